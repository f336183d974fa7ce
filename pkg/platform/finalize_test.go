package platform

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

func TestPlanFinalizeKeepsDataOnDoubt(t *testing.T) {
	tests := map[string]struct {
		edit func(*v1beta1.Spec)
		want v1beta1.DeletionPolicy
	}{
		"no policy means Retain":             {edit: func(*v1beta1.Spec) {}, want: v1beta1.DeletionPolicyRetain},
		"Delete is honoured on a valid spec": {edit: func(s *v1beta1.Spec) { s.DeletionPolicy = v1beta1.DeletionPolicyDelete }, want: v1beta1.DeletionPolicyDelete},
		"an invalid spec falls back to Retain": {
			edit: func(s *v1beta1.Spec) {
				s.DeletionPolicy = v1beta1.DeletionPolicyDelete
				s.Replicas.CeleryBeat = ptr(int32(2))
			},
			want: v1beta1.DeletionPolicyRetain,
		},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			c := installed(t, platform("car1-qa"))
			c.EditSpec(tt.edit)
			req := c.Request()
			req.Finalizing = true
			if got := PlanFinalize(req, testEnv(c.Clock)).Policy; got != tt.want {
				t.Errorf("policy %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFinalizeAnswersTheSameEveryTime(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	req := c.Request()
	req.Finalizing = true
	tests := map[string]struct {
		teardown  Teardown
		finalized bool
		says      string
	}{
		"nothing left finalizes":              {finalized: true, says: "deleted"},
		"a bucket still emptying waits":       {teardown: Teardown{Remaining: []string{`S3 bucket "b" still has 3 object versions`}}, says: "still has 3 object versions"},
		"a failing system waits and says why": {teardown: Teardown{Failures: []Failure{{System: "RabbitMQ", Message: "RabbitMQ: deleting user: connection refused", Retryable: true}}}, says: "connection refused"},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			first := Finalize(req, testEnv(c.Clock), tt.teardown)
			for range 2 {
				again := Finalize(req, testEnv(c.Clock), tt.teardown)
				if diff := cmp.Diff(encode(t, first), encode(t, again)); diff != "" {
					t.Fatalf("finalize answered differently the second time (-first +again):\n%s", diff)
				}
			}
			if first.Finalized != tt.finalized {
				t.Errorf("finalized = %v, want %v", first.Finalized, tt.finalized)
			}
			if msg := status(t, first).Message; !strings.Contains(msg, tt.says) {
				t.Errorf("status message %q does not say %q", msg, tt.says)
			}
			if !tt.finalized && first.ResyncAfterSeconds == 0 {
				t.Error("an unfinished finalize must ask to be called again")
			}
			if len(first.Children) != len(c.Names()) {
				t.Errorf("finalize kept %d of %d children", len(first.Children), len(c.Names()))
			}
		})
	}
}
