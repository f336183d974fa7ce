package external_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/postgres"
	"github.com/forklift-dev/summon/pkg/external/rabbitmq"
)

// Two hook replicas that ensure the same instance at the same moment must leave one password
// in PostgreSQL and in RabbitMQ, the one both put in their URLs. Each replica derives the
// passwords on its own from the master key and the parent's UID: there is nothing to share and
// so nothing to interleave.
func TestConcurrentEnsuresAgreeOnThePasswords(t *testing.T) {
	dsn := testenv.Postgres(t)
	mgmt := testenv.RabbitMQ(t)
	key := []byte("summon-test-master-key-0123456789abcdef")

	type replica struct {
		pg     *postgres.Provider
		rabbit *rabbitmq.Provider
	}
	var replicas [2]replica
	for i := range replicas {
		pg, err := postgres.New(postgres.Config{AdminDSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Close)
		rabbit, err := rabbitmq.New(rabbitmq.Config{ManagementURL: mgmt})
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = replica{pg: pg, rabbit: rabbit}
	}

	for round := range 20 {
		b := make([]byte, 4)
		rand.Read(b)
		ns := "racetest-" + hex.EncodeToString(b)
		uid := "uid-" + ns
		names := external.NamesFor("summon-test-", ns, "car1")

		var (
			wg                 sync.WaitGroup
			start              = make(chan struct{})
			dbURLs, amqpURLs   [2]string
			dbErrs, rabbitErrs [2]error
		)
		for i, r := range replicas {
			d, err := credentials.NewDeriver(key)
			if err != nil {
				t.Fatal(err)
			}
			in := external.Instance{
				Namespace: ns, Name: "car1", UID: uid, Names: names,
				DatabasePassword: d.Derive(uid, credentials.DatabasePassword),
				RabbitPassword:   d.Derive(uid, credentials.RabbitMQPassword),
			}
			t.Cleanup(func() {
				if i == 0 {
					ctx := context.Background()
					r.pg.Finalize(ctx, in, v1beta1.DeletionPolicyDelete)
					r.rabbit.Finalize(ctx, in, v1beta1.DeletionPolicyDelete)
				}
			})
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				dbURLs[i], dbErrs[i] = r.pg.Ensure(context.Background(), in)
			}()
			go func() {
				defer wg.Done()
				<-start
				amqpURLs[i], rabbitErrs[i] = r.rabbit.Ensure(context.Background(), in)
			}()
		}
		close(start)
		wg.Wait()

		for i := range replicas {
			if dbErrs[i] != nil || rabbitErrs[i] != nil {
				t.Fatalf("round %d, replica %d: %v; %v", round, i, dbErrs[i], rabbitErrs[i])
			}
		}
		if diff := cmp.Diff(dbURLs[0], dbURLs[1]); diff != "" {
			t.Errorf("round %d: the replicas' DATABASE_URLs differ", round)
		}
		if diff := cmp.Diff(amqpURLs[0], amqpURLs[1]); diff != "" {
			t.Errorf("round %d: the replicas' AMQP URLs differ", round)
		}
		for i := range replicas {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := pgx.Connect(ctx, dbURLs[i])
			cancel()
			if err != nil {
				t.Errorf("round %d: logging in to PostgreSQL with replica %d's URL: %v", round, i, err)
			} else {
				conn.Close(context.Background())
			}
			amqpConn, err := amqp.DialConfig(amqpURLs[i], amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
			if err != nil {
				t.Errorf("round %d: logging in to RabbitMQ with replica %d's URL: %v", round, i, err)
			} else {
				amqpConn.Close()
			}
		}
	}
}
