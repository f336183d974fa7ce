package realpods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/realnode"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/children"
)

// redisImage is Debian's redis-server of this machine as an image (realnode.WriteHostBinaryImage):
// the instance's own Redis, its Channels layer and (RabbitMQ being off) its Celery broker.
const redisImage = "localhost/summon-redis:host"

// tickSeconds is the example app's beat slot in this proof (TICK_SECONDS).
const tickSeconds = 10

// TestBeatAndTheWebsocketAcrossUpgrades deploys the example app with every component (its own
// Redis, Celery beat and a worker, Daphne and the channel worker) through Summon's real hook, and
// takes it v1 → v2 → v3 while a websocket client talks to Daphne through its Service. Beat records
// each send of a slot's tick and the worker each run, in the database (docs/example-app.md): no
// slot may be sent twice (the beat singleton held through every replacement of its pod), every
// tick sent must complete (no task lost by a worker's shutdown), and no tick may be left
// unfinished (a worker told to stop finishes the one in hand). The websocket must come back each
// time a Daphne pod is replaced: Daphne drops it (code 1006), and a reconnect lands on a Daphne
// that serves (dials before the first echo, while kube-proxy writes the new Service's rules, are
// not counted).
func TestBeatAndTheWebsocketAcrossUpgrades(t *testing.T) {
	n := realnode.Get(t)
	testenv.AppImages(t)
	redisArchive := filepath.Join(t.TempDir(), "redis.tar")
	if err := realnode.WriteHostBinaryImage(redisArchive, redisImage, "999", "/usr/bin/redis-server", "redis-server"); err != nil {
		t.Fatalf("the Redis image, from this machine's redis-server (Debian's redis-server package, which hack/redis.sh installs): %v", err)
	}
	if err := n.ImportImage(redisArchive); err != nil {
		t.Fatal(err)
	}
	app := deployApp(t, n, appOptions{
		postgresPort: "55434",
		replicas:     map[string]int64{"web": 1, "daphne": 1, "channelWorker": 1, "celeryd": 1, "celeryBeat": 1},
		hookArgs:     []string{"--redis-image=" + redisImage},
		spec: map[string]any{
			"redis":  map[string]any{},
			"config": map[string]any{"ALLOWED_HOSTS": "shop.example.com", "DEBUG": false, "TICK_SECONDS": int64(tickSeconds)},
			"celery": map[string]any{"concurrency": int64(1)},
		},
	})
	app.waitPhase("v1 Ready", readyOn("v1"))

	svc, err := app.cs.CoreV1().Services(app.ns).Get(t.Context(), children.NamesFor(app.name).Of(children.Daphne), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws := startEchoClient("ws://"+svc.Spec.ClusterIP+"/ws/echo/", "http://"+app.host)
	testenv.Eventually(t, time.Minute, 200*time.Millisecond, "a first echo through Daphne and the channel worker", func(context.Context) (bool, string) {
		c := ws.count()
		return c.echoes["v1"] > 0, c.String()
	}, n.Err)
	// As for the HTTP probes: what fails before the first answer is kube-proxy still writing the
	// new Service's rules, and is not counted.
	warmup := ws.count()

	// Two slots on v1, then each version for two slots more: the beat pod and the worker are
	// replaced at each bump.
	waitSlots(t, n, app.appDSN, 2)
	for _, v := range []string{"v2", "v3"} {
		app.setVersion(v)
		app.waitPhase(v+" Ready", readyOn(v))
		t.Logf("%s Ready; websocket: %s", v, ws.count())
		waitSlots(t, n, app.appDSN, 2)
	}
	c := ws.stop()
	t.Logf("websocket: %s", c)
	for _, v := range []string{"v1", "v2", "v3"} {
		if c.echoes[v] == 0 {
			t.Errorf("no echo from Daphne %s: %s", v, c)
		}
	}
	if len(c.failLog) > 0 {
		t.Logf("first failed dials, counted or not (%d before the first echo): %v", warmup.dialFailures, c.failLog)
	}
	if failed := c.dialFailures - warmup.dialFailures; failed > 0 {
		t.Errorf("%d reconnects failed: no Daphne served when the old one dropped the websocket (%s)", failed, c)
	}

	// Every tick sent has completed once the worker caught up.
	testenv.Eventually(t, 2*time.Minute, time.Second, "every tick sent to have run", func(ctx context.Context) (bool, string) {
		lost := slotsOf(t, app.appDSN, `SELECT f.slot FROM ticks_beatfire f LEFT JOIN ticks_tick t USING (slot) WHERE t.slot IS NULL`)
		return len(lost) == 0, fmt.Sprintf("sent and not run yet: %v", lost)
	}, n.Err)
	if twice := slotsOf(t, app.appDSN, `SELECT slot FROM ticks_beatfire GROUP BY slot HAVING count(*) > 1`); len(twice) > 0 {
		t.Errorf("slots sent more than once (two beats at a time): %v", twice)
	}
	if unfinished := slotsOf(t, app.appDSN, `SELECT slot FROM ticks_tickattempt WHERE finished_at IS NULL`); len(unfinished) > 0 {
		t.Errorf("ticks started and never finished (a worker stopped with one in hand): %v", unfinished)
	}
	rerun := slotsOf(t, app.appDSN, `SELECT slot FROM ticks_tickattempt GROUP BY slot HAVING count(*) > 1`)
	skipped := slotsOf(t, app.appDSN, fmt.Sprintf(`SELECT s FROM generate_series((SELECT min(slot) FROM ticks_beatfire), (SELECT max(slot) FROM ticks_beatfire), make_interval(secs => %d)) s
		WHERE s NOT IN (SELECT slot FROM ticks_beatfire)`, tickSeconds))
	byVersion := slotsOf(t, app.appDSN, `SELECT version || ': ' || count(*) FROM ticks_beatfire GROUP BY version ORDER BY version`)
	t.Logf("beat sent %v; ticks run more than once (redelivered): %d; slots skipped while a beat pod was replaced: %d %v", byVersion, len(rerun), len(skipped), skipped)
	if len(byVersion) != 3 {
		t.Errorf("sends by version %v, want one beat of each version to have sent", byVersion)
	}
}

// waitSlots waits until beat has sent k more slots than it had.
func waitSlots(t *testing.T, n *realnode.Node, dsn string, k int) {
	t.Helper()
	start := len(slotsOf(t, dsn, `SELECT DISTINCT slot FROM ticks_beatfire`))
	testenv.Eventually(t, time.Duration(k+3)*tickSeconds*time.Second, time.Second, fmt.Sprintf("%d more slots sent by beat", k), func(context.Context) (bool, string) {
		got := len(slotsOf(t, dsn, `SELECT DISTINCT slot FROM ticks_beatfire`))
		return got >= start+k, fmt.Sprintf("%d slots sent, from %d", got, start)
	}, n.Err)
}

// slotsOf runs a query of one text-able column and returns its rows as text.
func slotsOf(t *testing.T, dsn, query string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT q::text FROM ("+query+") AS r(q)")
	if err != nil {
		// Before beat's first send the tables may not exist yet: the migrations made them.
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// echoClient keeps one websocket to Daphne open, sending a message through the channel worker
// every 200 ms and reading its echo, and opens a new one each time the connection drops.
type echoClient struct {
	mu           sync.Mutex
	echoes       map[string]int // by the version of the Daphne that answered
	drops        map[string]int // by how the connection ended
	dials        int
	dialFailures int
	failLog      []string // the first failed dials: when, and why
	cancel       context.CancelFunc
	done         chan struct{}
}

type echoCount struct {
	echoes              map[string]int
	drops               map[string]int
	dials, dialFailures int
	failLog             []string
}

func (c echoCount) String() string {
	return fmt.Sprintf("%d connections (%d failed to open), echoes by version %v, drops %v", c.dials, c.dialFailures, c.echoes, c.drops)
}

func startEchoClient(url, origin string) *echoClient {
	ctx, cancel := context.WithCancel(context.Background())
	c := &echoClient{echoes: map[string]int{}, drops: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			c.session(ctx, url, origin)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return c
}

// session is one connection, from dial to drop.
func (c *echoClient) session(ctx context.Context, url, origin string) {
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	start := time.Now()
	conn, _, err := dialer.DialContext(ctx, url, http.Header{"Origin": {origin}})
	c.mu.Lock()
	c.dials++
	if err != nil && ctx.Err() == nil {
		c.dialFailures++
		if len(c.failLog) < 10 {
			c.failLog = append(c.failLog, fmt.Sprintf("%s +%dms %v", start.Format("15:04:05.000"), time.Since(start).Milliseconds(), err))
		}
	}
	c.mu.Unlock()
	if err != nil {
		return
	}
	defer conn.Close()
	read := func() (map[string]any, error) {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		var m map[string]any
		return m, json.Unmarshal(b, &m)
	}
	if _, err := read(); err != nil { // hello
		c.dropped(ctx, err)
		return
	}
	for i := 0; ctx.Err() == nil; i++ {
		msg := fmt.Sprintf("worker: %d", i)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			c.dropped(ctx, err)
			return
		}
		m, err := read()
		if err != nil {
			c.dropped(ctx, err)
			return
		}
		version, _ := m["version"].(string)
		c.mu.Lock()
		if m["echo"] == msg && m["worker"] != nil {
			c.echoes[version]++
		} else {
			c.drops[fmt.Sprintf("a wrong echo: %v", m)]++
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *echoClient) dropped(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	kind := err.Error()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		kind = fmt.Sprintf("close %d", ce.Code)
	} else if strings.Contains(kind, "timeout") {
		kind = "no echo within 10 s"
	}
	c.mu.Lock()
	c.drops[kind]++
	c.mu.Unlock()
}

func (c *echoClient) count() echoCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := echoCount{echoes: map[string]int{}, drops: map[string]int{}, dials: c.dials, dialFailures: c.dialFailures, failLog: append([]string(nil), c.failLog...)}
	for k, v := range c.echoes {
		out.echoes[k] = v
	}
	for k, v := range c.drops {
		out.drops[k] = v
	}
	return out
}

func (c *echoClient) stop() echoCount {
	c.cancel()
	<-c.done
	return c.count()
}
