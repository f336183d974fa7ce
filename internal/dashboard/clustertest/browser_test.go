package clustertest

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/fleettest"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

var update = flag.Bool("update", false, "rewrite docs/dashboard.png, docs/dashboard.md's screenshot, from the browser test")

const (
	v1 = "108912-6e2f8b7-release-2019-8"
	v2 = "109004-a41c9d0-release-2019-9"
)

// actionTimeout is where one browser step gives up; it says nothing about how fast a step must
// be.
const actionTimeout = 30 * time.Second

// browser starts a headless Chromium of its own (a fresh profile, nothing in the background)
// for the test, and stops it when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	// Chromium puts its singleton socket in a folder under TMPDIR, and its crash reports under
	// XDG_CONFIG_HOME, and leaves both there: give it a folder of its own, removed after it
	// stops. Not t.TempDir, whose path is too long for a socket.
	tmp, err := os.MkdirTemp("", "summon-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Chromium's sandbox refuses to run as root, which CI is.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("TMPDIR="+tmp, "XDG_CONFIG_HOME="+tmp),
		chromedp.WindowSize(1440, 760),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return ctx
}

// do runs browser steps, each test's step bounded by actionTimeout.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor waits until a JavaScript expression is true in the page, re-checked on every change of
// the page's DOM.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingMutation())); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, js, err)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return png
}

func bypassCSP() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
		return err
	})
}

// rowsJS lists the fleet table's rows as namespace/name.
const rowsJS = `[...document.querySelectorAll("tr[data-instance]")].map(r => r.dataset.instance)`

func instance(namespace, name, version string) *v1beta1.SummonPlatform {
	return &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1beta1.Spec{
			Version:  version,
			Hostname: name + ".example.com",
			Config:   map[string]v1beta1.ConfigValue{"DEBUG": v1beta1.BoolValue(false), "TIME_ZONE": v1beta1.StringValue("Europe/Berlin")},
			Secrets:  []string{name + "-inputs"},
		},
	}
}

// TestTheFleetInABrowser is the dashboard as a person uses it: the fleet page across namespaces,
// filtered to Error, then one broken instance, which the test repairs while the page watches it
// move from Error through Migrating and Deploying to Ready without a reload.
func TestTheFleetInABrowser(t *testing.T) {
	k := kube(t)
	ctx := browser(t)
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }

	acme := fleettest.New(instance("summon-prod", "acme", v1), ago(26*time.Hour)).Ready()
	acme.Clock = ago(12 * time.Minute)
	acme.Upgrade(v2).MigrationFailed()
	hooli := fleettest.New(instance("summon-prod", "hooli", v2), ago(40*time.Minute))
	// Its input Secret was never created: the hook says so and waits.
	clear(hooli.Related["Secret.v1"])
	hooli.Sync()
	fleet := []*fleettest.Instance{
		acme, hooli,
		fleettest.New(instance("summon-prod", "globex", v2), ago(9*time.Hour)).Ready(),
		fleettest.New(instance("summon-prod", "initech", v1), ago(30*time.Hour)).Ready(),
		fleettest.New(instance("summon-qa", "car1-qa", v2), ago(3*time.Minute)).Migrating(),
		fleettest.New(instance("summon-qa", "car2-qa", v2), ago(6*time.Minute)).Deploying(),
		fleettest.New(instance("summon-qa", "car3-qa", v2), ago(5*time.Hour)).Ready(),
		fleettest.New(instance("summon-staging", "umbrella", v2), ago(time.Minute)),
		fleettest.New(instance("summon-staging", "stark", v2), ago(2*time.Minute)),
	}
	fleet[7].Sync() // umbrella: synced once, Initializing; stark: never synced, no status
	for _, in := range fleet {
		k.publish(t, in)
	}
	failedJob := children.NamesFor("acme").MigrationJob(v2, 0)
	k.event(t, "summon-prod", corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Name: failedJob},
		corev1.EventTypeWarning, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	k.event(t, "summon-prod", corev1.ObjectReference{Kind: "SummonPlatform", APIVersion: v1beta1.APIVersion, Name: "acme"},
		corev1.EventTypeNormal, "SpecChanged", "spec.version is now "+v2)

	dash := startDashboard(t, k.dashboardUser(t), "")
	ours := func(rows []string) []string {
		return slices.DeleteFunc(rows, func(r string) bool {
			return !strings.HasPrefix(r, "summon-prod/") && !strings.HasPrefix(r, "summon-qa/") && !strings.HasPrefix(r, "summon-staging/")
		})
	}

	// The fleet: trouble first, then namespace and name; counts per phase.
	do(t, ctx, "loading the fleet page", chromedp.Navigate(dash.url), chromedp.WaitVisible(chromedp.CSS("table.fleet")))
	calls := dash.calls.Load()
	want := []string{
		"summon-prod/acme", "summon-prod/hooli",
		"summon-prod/globex", "summon-prod/initech", "summon-qa/car1-qa", "summon-qa/car2-qa", "summon-qa/car3-qa",
		"summon-staging/stark", "summon-staging/umbrella",
	}
	if diff := cmp.Diff(want, ours(eval[[]string](t, ctx, rowsJS))); diff != "" {
		t.Errorf("fleet rows (-want +got):\n%s", diff)
	}
	counts := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll("a.count")].map(a => [a.dataset.phase, a.querySelector("b").textContent]))`)
	if diff := cmp.Diff(map[string]string{"Initializing": "1", "Migrating": "1", "Deploying": "1", "Ready": "3", "Error": "2", "No status": "1"}, counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if got := eval[string](t, ctx, `document.querySelector('tr[data-instance="summon-prod/acme"] .tag-bad').textContent`); got != "migration failed" {
		t.Errorf("acme's row says %q, want that its migration failed", got)
	}
	png := screenshot(t, ctx, "fleet.png")
	if *update {
		if err := os.WriteFile(filepath.Join(repo, "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Filter to Error, then search.
	do(t, ctx, "filtering to Error", chromedp.Click(chromedp.CSS(`a.count[data-phase="Error"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.count.active[data-phase="Error"]`)))
	if diff := cmp.Diff([]string{"summon-prod/acme", "summon-prod/hooli"}, ours(eval[[]string](t, ctx, rowsJS))); diff != "" {
		t.Errorf("rows in Error (-want +got):\n%s", diff)
	}
	if got := eval[string](t, ctx, `document.querySelector('select[name=phase]').value`); got != "Error" {
		t.Errorf("the phase filter shows %q, want Error", got)
	}
	do(t, ctx, "searching", chromedp.SendKeys(chromedp.CSS(`input[name=q]`), "acme.example\r"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=q][value="acme.example"]`)))
	if diff := cmp.Diff([]string{"summon-prod/acme"}, eval[[]string](t, ctx, rowsJS)); diff != "" {
		t.Errorf("rows in Error matching the search (-want +got):\n%s", diff)
	}

	// The instance.
	do(t, ctx, "opening acme", chromedp.Click(chromedp.CSS(`tr[data-instance="summon-prod/acme"] td.name a`)),
		chromedp.WaitVisible(chromedp.CSS("#phase")))
	if got := eval[string](t, ctx, `document.getElementById("phase").textContent`); got != "Error" {
		t.Errorf("acme's phase reads %q", got)
	}
	row := `document.querySelector('tr[data-job="` + failedJob + `"] `
	if got := eval[string](t, ctx, row+`.job').textContent`); got != "Failed" {
		t.Errorf("the failed migration's state reads %q", got)
	}
	if got := eval[string](t, ctx, row+`.msg').textContent`); got != "BackoffLimitExceeded: Job has reached the specified backoff limit" {
		t.Errorf("the failed migration's reason reads %q", got)
	}
	commands := eval[[]string](t, ctx, `[...document.querySelectorAll('tr[data-job="`+failedJob+`"] td.commands code')].map(c => c.textContent)`)
	if diff := cmp.Diff([]string{"kubectl logs job/" + failedJob + " -n summon-prod", "summonctl logs acme migrations -n summon-prod"}, commands); diff != "" {
		t.Errorf("the commands that print the migration's logs (-want +got):\n%s", diff)
	}
	events := eval[string](t, ctx, `document.querySelector("table.events").textContent`)
	if !strings.Contains(events, "BackoffLimitExceeded") || !strings.Contains(events, "SpecChanged") {
		t.Errorf("the events table lacks the Job's or the SummonPlatform's event:\n%s", events)
	}
	if got := eval[string](t, ctx, `document.querySelector(".hosts a").href`); got != "https://acme.example.com/" {
		t.Errorf("the host links to %q", got)
	}
	waitFor(t, ctx, "the live updates to connect", `document.getElementById("live-state").classList.contains("on")`)
	// Every phase the page shows from now on, as it changes: a watch of the page, not samples.
	// The record lives in the page, so a reload would lose it.
	eval[chromedp.Void](t, ctx, `(() => {
		window.seen = [];
		const note = () => { const p = document.getElementById("phase"); const s = p ? p.textContent : "(none)"; if (window.seen.at(-1) !== s) window.seen.push(s); };
		note();
		new MutationObserver(note).observe(document.getElementById("live"), {childList: true, subtree: true, characterData: true});
	})()`)

	// The fix: a new attempt, which migrates, deploys and rolls out.
	for _, step := range []struct {
		phase string
		do    func()
	}{
		{"Migrating", func() { acme.Retry() }},
		{"Deploying", func() { acme.Deploying() }},
		{"Ready", func() { acme.Ready() }},
	} {
		step.do()
		k.publish(t, acme)
		waitFor(t, ctx, "acme to show "+step.phase, `document.getElementById("phase").textContent === "`+step.phase+`"`)
	}
	if diff := cmp.Diff([]string{"Error", "Migrating", "Deploying", "Ready"}, eval[[]string](t, ctx, `window.seen`)); diff != "" {
		t.Errorf("phases the open page showed (-want +got):\n%s", diff)
	}
	if got := eval[string](t, ctx, `document.querySelector('tr[data-condition="Ready"] td:nth-child(2)').textContent`); got != "True" {
		t.Errorf("the Ready condition reads %q", got)
	}
	screenshot(t, ctx, "instance.png")

	// Every page and every live update came from the informers' memory.
	if got := dash.calls.Load() - calls; got != 0 {
		t.Errorf("the dashboard sent %d requests to the API server while the pages were viewed, want none after loading the fleet", got)
	}

	// A graceful stop ends the live connection; the page says it is reconnecting.
	if err := dash.stop(); err != nil {
		t.Fatalf("stopping the dashboard with a live viewer: %v", err)
	}
	waitFor(t, ctx, "the page to notice the dashboard stopped", `document.getElementById("live-state").classList.contains("off")`)
}
