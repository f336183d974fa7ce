// Package outside runs the hook's calls to the systems outside the cluster: it asks each provider
// that is switched on to ensure or tear down one instance's resources, all at once and under one
// deadline, and turns what they answer into what the pure core reads (platform.Ensured,
// platform.Teardown). When to call is the core's decision (platform.PlanEnsure); this package only
// carries it out.
package outside

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/aws"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Storage is the AWS provider as the hook uses it (*aws.Provider satisfies it).
type Storage interface {
	Ensure(ctx context.Context, in external.Instance) (aws.Access, error)
	Finalize(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error)
}

// Service is the RabbitMQ or PostgreSQL provider as the hook uses it. Their Ensure returns the
// URL the app would use; the core builds that URL itself (it must, in steady state, without a
// call), so it is not read here.
type Service interface {
	Ensure(ctx context.Context, in external.Instance) (string, error)
	Finalize(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error)
}

// Systems are the providers the hook was started with; a nil one is switched off.
type Systems struct {
	AWS      Storage
	RabbitMQ Service
	Postgres Service
	// View is what the core is told about them: which are on, and how the apps reach them.
	View platform.Outside
	// Budget bounds one round of calls. Metacontroller waits 10 s for a hook; the rest of the
	// call must fit in what is left.
	Budget time.Duration
	// Log, when set, follows each call at debug level: the system, the instance (never its
	// secrets), how long it took and how it failed.
	Log *slog.Logger
}

// called logs one finished call at debug level. err is reported as the status would report it
// (failureOf), so a log line can't hold more than the status does.
func (s *Systems) called(ctx context.Context, op, system string, in external.Instance, start time.Time, err error) {
	if s.Log == nil || !s.Log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{slog.String("system", system), slog.String("instance", in.String()), slog.Duration("took", time.Since(start))}
	if err != nil {
		attrs = append(attrs, slog.String("error", failureOf(system, err).Message))
	}
	s.Log.LogAttrs(ctx, slog.LevelDebug, op, attrs...)
}

// DefaultBudget leaves a hook call room to answer within Metacontroller's 10 s.
const DefaultBudget = 7 * time.Second

func (s *Systems) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	b := s.Budget
	if b <= 0 {
		b = DefaultBudget
	}
	return context.WithTimeout(ctx, b)
}

// Ensure makes every switched-on system hold the instance's resources. The systems are called at
// once: one slow system must not use up the others' time.
func (s *Systems) Ensure(ctx context.Context, plan platform.EnsurePlan) *platform.Ensured {
	ctx, cancel := s.budget(ctx)
	defer cancel()
	out := &platform.Ensured{}
	var mu sync.Mutex
	fail := func(system string, err error) {
		mu.Lock()
		defer mu.Unlock()
		out.Failures = append(out.Failures, failureOf(system, err))
	}
	var wg sync.WaitGroup
	if s.AWS != nil {
		wg.Go(func() {
			start := time.Now()
			access, err := s.AWS.Ensure(ctx, plan.Instance)
			s.called(ctx, "ensure", "AWS", plan.Instance, start, err)
			if err != nil {
				fail("AWS", err)
				return
			}
			if access.SecretAccessKey != "" {
				mu.Lock()
				out.NewAccessKey = &platform.AccessKey{ID: access.AccessKeyID, Secret: access.SecretAccessKey}
				mu.Unlock()
			}
		})
	}
	if s.RabbitMQ != nil {
		wg.Go(func() {
			start := time.Now()
			_, err := s.RabbitMQ.Ensure(ctx, plan.Instance)
			s.called(ctx, "ensure", "RabbitMQ", plan.Instance, start, err)
			if err != nil {
				fail("RabbitMQ", err)
			}
		})
	}
	if s.Postgres != nil && plan.WantsDatabase {
		wg.Go(func() {
			start := time.Now()
			_, err := s.Postgres.Ensure(ctx, plan.Instance)
			s.called(ctx, "ensure", "PostgreSQL", plan.Instance, start, err)
			if err != nil {
				fail("PostgreSQL", err)
			}
		})
	}
	wg.Wait()
	sortFailures(out.Failures)
	return out
}

// Teardown removes what the deletion policy says must go, from every switched-on system at once,
// and reports what is left.
func (s *Systems) Teardown(ctx context.Context, plan platform.FinalizePlan) platform.Teardown {
	ctx, cancel := s.budget(ctx)
	defer cancel()
	var out platform.Teardown
	var mu sync.Mutex
	record := func(system string, left []string, err error) {
		mu.Lock()
		defer mu.Unlock()
		out.Remaining = append(out.Remaining, left...)
		switch {
		case external.LeftAlone(err):
			out.LeftAlone = append(out.LeftAlone, leftAlone(err)...)
		case err != nil:
			out.Failures = append(out.Failures, failureOf(system, err))
		}
	}
	var wg sync.WaitGroup
	for system, p := range map[string]interface {
		Finalize(context.Context, external.Instance, v1beta1.DeletionPolicy) ([]string, error)
	}{"AWS": s.AWS, "RabbitMQ": s.RabbitMQ, "PostgreSQL": s.Postgres} {
		if p == nil || (system == "PostgreSQL" && !plan.WantsDatabase) {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			left, err := p.Finalize(ctx, plan.Instance, plan.Policy)
			s.called(ctx, "finalize", system, plan.Instance, start, err)
			record(system, left, err)
		})
	}
	wg.Wait()
	sortFailures(out.Failures)
	slices.Sort(out.Remaining)
	slices.Sort(out.LeftAlone)
	return out
}

// leftAlone lists, one message each, the resources a Finalize did not touch as not the
// instance's.
func leftAlone(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, leftAlone(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// sortFailures puts failures in a fixed order: the systems answer in any order, and the status
// must not change with it.
func sortFailures(fs []platform.Failure) {
	slices.SortFunc(fs, func(a, b platform.Failure) int { return strings.Compare(a.System, b.System) })
}

// failureOf turns a provider's error into what the status may say. The providers' errors carry
// no secret (external.Error cuts them out); any other error is reported by system alone, since
// nothing vouches for its text.
func failureOf(system string, err error) platform.Failure {
	var e *external.Error
	if errors.As(err, &e) {
		return platform.Failure{System: system, Message: e.Error(), Retryable: e.Retryable && e.NotOurs == "", NotOurs: e.NotOurs}
	}
	retryable := external.Transient(err)
	msg := system + ": the call failed"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = system + ": no answer in time"
	}
	return platform.Failure{System: system, Message: msg, Retryable: retryable}
}
