package clustertest

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/fleettest"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// hostile breaks out of HTML text, of quoted and unquoted attributes and of a title, and each
// part, if it ever ran, would say so in window.pwned or the page's title. It fits the CRD's
// 256-byte limit on the shortest status fields.
func hostile(tag string) string {
	return `<script>window.pwned="` + tag + `";document.title="pwned"</script>` +
		`"><img src=x onerror="window.pwned='` + tag + `'">` +
		`' onmouseover='window.pwned=1' x='` +
		`<svg onload="window.pwned=2"></svg>` +
		`</title><script>window.pwned=3</script>`
}

// TestHostileStringsFromTheClusterRunNoScriptInTheBrowser puts script into every string the
// dashboard shows that the API server lets anyone write freely: the status message and a
// condition's, an external name, a recorded version, a config value of the spec, an event's
// message, and the search box's own echo. The name, the namespace and the hostname can't hold
// such a string (the API server and the CRD's schema refuse it); the handler tests cover a
// hostile hostname. The page's Content-Security-Policy is bypassed, so that escaping alone is
// what is tested.
func TestHostileStringsFromTheClusterRunNoScriptInTheBrowser(t *testing.T) {
	k := kube(t)
	ctx := browser(t)
	const namespace = "summon-xss"

	p := instance(namespace, "xss", v1)
	p.Spec.Config["SITE_NAME"] = v1beta1.StringValue(hostile("config"))
	in := fleettest.New(p, time.Now().Add(-time.Hour)).Ready()
	st := &in.Parent.Status
	st.Message = hostile("message")
	st.MigratedVersion = hostile("version")
	st.External = &v1beta1.ExternalStatus{Bucket: hostile("bucket")}
	for i := range st.Conditions {
		st.Conditions[i].Message = hostile("condition")
	}
	k.publish(t, in)
	t.Cleanup(func() {
		// The fleet of the other browser test stays as it was.
		_ = k.dyn.Resource(platforms).Namespace(namespace).Delete(t.Context(), "xss", metav1.DeleteOptions{})
	})
	k.event(t, namespace, corev1.ObjectReference{Kind: v1beta1.Kind, APIVersion: v1beta1.APIVersion, Name: "xss"},
		corev1.EventTypeWarning, "Hostile", hostile("event"))

	dash := startDashboard(t, k.dashboardUser(t), namespace)
	do(t, ctx, "turning the page's CSP off", bypassCSP())

	checkNoScriptRan := func(where string) {
		t.Helper()
		if got := eval[string](t, ctx, `String(window.pwned)`); got != "undefined" {
			t.Errorf("%s: a hostile string ran as script: window.pwned = %q", where, got)
		}
		if got := eval[string](t, ctx, `document.title`); strings.Contains(got, "pwned") {
			t.Errorf("%s: a hostile string ran as script: the title is %q", where, got)
		}
		if got := eval[int](t, ctx, `document.images.length + document.querySelectorAll("svg, [onmouseover], [onerror], [onload]").length`); got != 0 {
			t.Errorf("%s: %d elements came from a hostile string", where, got)
		}
	}

	search := hostile("search")
	for _, page := range []string{dash.url, dash.url + "?q=" + url.QueryEscape(search), dash.url + "instances/" + namespace + "/xss"} {
		do(t, ctx, "loading "+page, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#live")))
		checkNoScriptRan(page)
	}
	do(t, ctx, "loading the search", chromedp.Navigate(dash.url+"?q="+url.QueryEscape(search)), chromedp.WaitVisible(chromedp.CSS("input[name=q]")))
	if got := eval[string](t, ctx, `document.querySelector("input[name=q]").value`); got != search {
		t.Errorf("the search box holds %q, want the search as typed", got)
	}

	// The instance page shows every string as the text it is.
	do(t, ctx, "loading the instance", chromedp.Navigate(dash.url+"instances/"+namespace+"/xss"), chromedp.WaitVisible(chromedp.CSS("#message")))
	for what, js := range map[string]string{
		"message":   `document.getElementById("message").textContent`,
		"condition": `document.querySelector('tr[data-condition="Ready"] td.msg').textContent`,
		"config":    `[...document.querySelectorAll("dl.config dd")].map(d => d.textContent).find(s => s.includes("config")) || ""`,
		"bucket":    `[...document.querySelectorAll("dl.facts dd")].map(d => d.textContent).find(s => s.includes("bucket")) || ""`,
		"version":   `[...document.querySelectorAll("dl.facts dd")].map(d => d.textContent).find(s => s.includes("version")) || ""`,
		"event":     `document.querySelector("table.events td.msg").textContent`,
	} {
		if got := eval[string](t, ctx, js); got != hostile(what) {
			t.Errorf("the %s reads %q, want the hostile string as text", what, got)
		}
	}

	// A hostile string that arrives by a live update is text too.
	waitFor(t, ctx, "the live updates to connect", `document.getElementById("live-state").classList.contains("on")`)
	st.Message = hostile("live")
	k.publish(t, in)
	waitFor(t, ctx, "the new message", `document.getElementById("message").textContent === `+jsString(hostile("live")))
	checkNoScriptRan("after a live update")
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}
