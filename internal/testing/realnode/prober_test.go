package realnode

import "testing"

func TestUnansweredSYNsSayWhereEachWent(t *testing.T) {
	const (
		toPod    = "ipv4     2 tcp      6 118 SYN_SENT src=198.18.0.1 dst=198.19.16.114 sport=37752 dport=80 [UNREPLIED] src=198.18.0.7 dst=198.18.0.1 sport=8000 dport=37752 mark=0 zone=0 use=2"
		notNATed = "ipv4     2 tcp      6 119 SYN_SENT src=198.18.0.1 dst=198.19.16.114 sport=37760 dport=80 [UNREPLIED] src=198.19.16.114 dst=198.18.0.1 sport=80 dport=37760 mark=0 zone=0 use=2"
		older    = "ipv4     2 tcp      6 60 SYN_SENT src=198.18.0.1 dst=198.19.16.114 sport=37000 dport=80 [UNREPLIED] src=198.18.0.9 dst=198.18.0.1 sport=8000 dport=37000 mark=0 zone=0 use=2"
		answered = "ipv4     2 tcp      6 117 TIME_WAIT src=198.18.0.1 dst=198.19.16.114 sport=37770 dport=80 src=198.18.0.8 dst=198.18.0.1 sport=8000 dport=37770 [ASSURED] mark=0 zone=0 use=2"
		otherSvc = "ipv4     2 tcp      6 119 SYN_SENT src=198.18.0.1 dst=198.19.1.1 sport=37780 dport=80 [UNREPLIED] src=198.18.0.5 dst=198.18.0.1 sport=8000 dport=37780 mark=0 zone=0 use=2"
	)
	for _, tc := range []struct {
		name, table, want string
	}{
		{"a SYN sent to a pod that never answered names the pod's address", toPod, "SYN from port 37752 sent to 198.18.0.7:8000, unanswered"},
		{"a SYN that kept the Service's address says it was not translated", notNATed, "SYN from port 37760 sent to 198.19.16.114:80, not translated, unanswered"},
		{"an older unanswered SYN, an answered connection and another Service are left out", older + "\n" + answered + "\n" + otherSvc, "no unanswered SYN to 198.19.16.114:80: the connection was made"},
		{"every recent unanswered SYN is listed", toPod + "\n" + notNATed + "\n", "SYN from port 37752 sent to 198.18.0.7:8000, unanswered; SYN from port 37760 sent to 198.19.16.114:80, not translated, unanswered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unansweredIn(tc.table, "198.19.16.114", "80"); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
