package protocol

import "testing"

func TestClientID(t *testing.T) {
	for _, tc := range []struct{ user, program, instance, want string }{
		{"controller", "controller", "3f2a9c", "controller-controller-3f2a9c"},
		{"alice", "cli", "1f2e", "alice-cli-1f2e"},
		{"", "ha", "0a1b", "tutti-ha-0a1b"},
	} {
		if got := ClientID(tc.user, tc.program, tc.instance); got != tc.want {
			t.Errorf("ClientID(%q, %q, %q) = %q, want %q", tc.user, tc.program, tc.instance, got, tc.want)
		}
	}
}
