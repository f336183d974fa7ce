package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/rabbitmq"
)

// withBroker gives the app a RabbitMQ vhost of its own, made by Summon's RabbitMQ provider, and
// writes the AMQP URL it returns into the config file as Summon does (CELERY_BROKER_URL).
func (a *app) withBroker(t *testing.T) string {
	t.Helper()
	mgmt := testenv.RabbitMQ(t)
	u, err := url.Parse(mgmt)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	admin, err := rabbithole.NewClient((&url.URL{Scheme: u.Scheme, Host: u.Host}).String(), u.User.Username(), pw)
	if err != nil {
		t.Fatal(err)
	}
	overview, err := admin.Overview()
	if err != nil {
		t.Fatalf("reading RabbitMQ's listeners: %v", err)
	}
	port := 0
	for _, l := range overview.Listeners {
		if l.Protocol == "amqp" {
			port = int(l.Port)
		}
	}
	if port == 0 {
		t.Fatalf("RabbitMQ at %s lists no AMQP listener", u.Host)
	}
	p, err := rabbitmq.New(rabbitmq.Config{ManagementURL: mgmt, AMQPHost: "127.0.0.1", AMQPPort: port})
	if err != nil {
		t.Fatal(err)
	}
	d, err := credentials.NewDeriver([]byte("example-app-test-master-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("example-%d", time.Now().UnixNano())
	in := external.Instance{Namespace: ns, Name: "example", UID: "uid-" + ns, Names: external.NamesFor("summon-test-", ns, "example")}
	in.RabbitPassword = d.Derive(in.UID, credentials.RabbitMQPassword)
	broker, err := p.Ensure(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete); err != nil {
			t.Errorf("deleting the test's vhost: %v", err)
		}
	})
	return broker
}

// channelsURL is the Channels layer URL of the instance whose Redis hack/redis.sh runs, moved to
// the loopback port the script gave that server.
func channelsURL(t *testing.T) string {
	t.Helper()
	dir := testenv.Redis(t)
	b, err := os.ReadFile(filepath.Join(dir, children.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var settings map[string]string
	if err := yaml.Unmarshal(b, &settings); err != nil {
		t.Fatal(err)
	}
	ports, err := os.ReadFile(filepath.Join(dir, "ports"))
	if err != nil {
		t.Fatal(err)
	}
	port := ""
	for _, line := range strings.Fields(string(ports)) {
		if v, ok := strings.CutPrefix(line, "channels="); ok {
			port = v
		}
	}
	u, err := url.Parse(settings[children.RedisChannelsURLSetting])
	if err != nil || port == "" {
		t.Fatalf("no Channels layer URL and port in %s: %v", dir, err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", port)
	return u.String()
}

// count runs a query that answers one number.
func (a *app) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	if err := a.db.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// The queries of docs/example-app.md, "Beat and the tick".
const (
	doubleFires = `SELECT count(*) FROM (SELECT slot FROM ticks_beatfire GROUP BY slot HAVING count(*) > 1) d`
	lostTicks   = `SELECT count(*) FROM ticks_beatfire f LEFT JOIN ticks_tick t USING (slot) WHERE t.slot IS NULL`
	runTwice    = `SELECT count(*) FROM (SELECT slot FROM ticks_tickattempt GROUP BY slot HAVING count(*) > 1) d`
	interrupted = `SELECT count(*) FROM ticks_tickattempt WHERE finished_at IS NULL`
	completed   = `SELECT count(*) FROM ticks_tick`
	sent        = `SELECT count(*) FROM ticks_beatfire`
)

// TestBeatSendsEachSlotOnceAndNoTickIsLostWhenAWorkerStops runs Summon's beat and worker commands
// with a RabbitMQ vhost that Summon's provider made: a worker told to stop with a tick in hand
// finishes it first, every tick sent runs once, and a beat replaced within a slot doesn't send
// that slot again.
func TestBeatSendsEachSlotOnceAndNoTickIsLostWhenAWorkerStops(t *testing.T) {
	const tickSeconds = 2
	a := newApp(t, func(s children.Settings) {
		s["TICK_SECONDS"] = tickSeconds
		s["TICK_WORK_SECONDS"] = 3
	})
	a.configure(t, "CELERY_BROKER_URL", a.withBroker(t))
	if out, err := a.migrate("v1"); err != nil {
		t.Fatalf("migrating: %v\n%s", err, out)
	}
	worker := a.start(children.Celeryd, "v1")
	beat := a.start(children.CeleryBeat, "v1")

	// atLeast waits until query counts n, as long as the process p runs.
	atLeast := func(query string, n int, p *server) {
		t.Helper()
		testenv.Eventually(t, 3*time.Minute, 250*time.Millisecond, fmt.Sprintf("%d of %q", n, query), func(ctx context.Context) (bool, string) {
			got := a.count(t, query)
			return got >= n, strconv.Itoa(got)
		}, p.exited)
	}

	// A worker told to stop with a tick in hand finishes it, then exits cleanly.
	atLeast(interrupted, 1, worker)
	worker.stop(t)
	if n := a.count(t, interrupted); n != 0 {
		t.Errorf("%d ticks left unfinished by a worker's warm shutdown", n)
	}
	worker = a.start(children.Celeryd, "v1")
	// Every tick sent completes once the worker has caught up, and none ran twice.
	atLeast(sent, 3, beat)
	beat.stop(t)
	total := a.count(t, sent)
	atLeast(completed, total, worker)
	worker.stop(t)
	expectClean(t, a)

	// A beat replaced within a slot (as a version bump replaces the StatefulSet's pod) doesn't
	// send again the slot the first one sent. Hour-long slots make the replacement fit in one.
	if _, err := a.db.Exec(t.Context(), `TRUNCATE ticks_beatfire, ticks_tickattempt, ticks_tick`); err != nil {
		t.Fatal(err)
	}
	a.configure(t, "TICK_SECONDS", 3600)
	worker = a.start(children.Celeryd, "v1")
	beat = a.start(children.CeleryBeat, "v1")
	atLeast(sent, 1, beat) // the hour nobody sent yet, at once
	beat.stop(t)
	var slot time.Time
	if err := a.db.QueryRow(t.Context(), `SELECT slot FROM ticks_beatfire`).Scan(&slot); err != nil {
		t.Fatal(err)
	}
	beat = a.start(children.CeleryBeat, "v2")
	waitFor := "slot " + slot.UTC().Format("2006-01-02T15:04:05+00:00") + " was sent already"
	testenv.Eventually(t, 3*time.Minute, 250*time.Millisecond, "the second beat to see the slot sent", func(ctx context.Context) (bool, string) {
		// Unless the hour turned meanwhile: then the second beat rightly sends the new one.
		return strings.Contains(beat.out.String(), waitFor) || a.count(t, sent) > 1, ""
	}, beat.exited)
	beat.stop(t)
	atLeast(completed, a.count(t, sent), worker)
	worker.stop(t)
	expectClean(t, a)
	if n := a.count(t, `SELECT count(*) FROM ticks_beatfire WHERE slot = '`+slot.Format(time.RFC3339)+`'`); n != 1 {
		t.Errorf("the slot of %s was sent %d times, want once", slot, n)
	}
}

// expectClean checks the ticks' records with the queries of docs/example-app.md.
func expectClean(t *testing.T, a *app) {
	t.Helper()
	for what, query := range map[string]string{
		"slots sent twice":         doubleFires,
		"ticks sent and never run": lostTicks,
		"ticks run twice":          runTwice,
		"ticks left unfinished":    interrupted,
	} {
		if n := a.count(t, query); n != 0 {
			t.Errorf("%d %s", n, what)
		}
	}
}

// TestTheWebsocketEchoesThroughTheChannelsLayerAndTheWorker runs Summon's Daphne and channel
// worker commands with the Channels layer of the instance's own Redis (hack/redis.sh).
func TestTheWebsocketEchoesThroughTheChannelsLayerAndTheWorker(t *testing.T) {
	a := newApp(t, nil)
	a.configure(t, children.RedisChannelsURLSetting, channelsURL(t))
	daphne := a.serve(children.Daphne, "v1")
	worker := a.start(children.ChannelWorker, "v1")

	header := http.Header{"Origin": {"http://127.0.0.1"}}
	conn, resp, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws/echo/", daphne.port), header)
	if err != nil {
		t.Fatalf("websocket to Daphne: %v (%v)", err, resp)
	}
	defer conn.Close()
	read := func() map[string]any {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		var m map[string]any
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading from the websocket: %v", err)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return m
	}
	if hello := read(); hello["version"] != "v1" || hello["hello"] != true {
		t.Errorf("hello = %v, want v1's", hello)
	}
	for _, msg := range []string{"through Redis", "worker: through the channel worker"} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := read()
		if got["echo"] != msg || got["version"] != "v1" {
			t.Errorf("echo of %q = %v", msg, got)
		}
		if worker, _ := got["worker"].(map[string]any); strings.HasPrefix(msg, "worker:") && (worker == nil || worker["version"] != "v1") {
			t.Errorf("echo of %q came back without the worker: %v", msg, got)
		}
	}
	// Without an Origin among ALLOWED_HOSTS, Daphne refuses the websocket.
	if c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws/echo/", daphne.port), nil); err == nil {
		c.Close()
		t.Error("a websocket without an Origin header was accepted")
	}

	// Daphne told to stop closes the connection, and exits cleanly.
	daphne.stop(t)
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, _, err = conn.ReadMessage()
	t.Logf("the websocket when Daphne stopped: %v", err)
	if err == nil {
		t.Error("the websocket stayed open after Daphne stopped")
	}
	worker.stop(t)
}
