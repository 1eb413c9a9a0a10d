package broker

import "testing"

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		// plain topics
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"a/b", "a/b/c", false},
		// + in the pattern
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/x/d", false},
		{"a/+/c", "a/x", false},
		{"a/+/c", "a/x/c/d", false},
		{"a/+/c", "a/#", false},
		{"a/+/c", "a/+/#", false},
		{"a/+", "a", false},
		// # in the pattern covers its parent and everything below
		{"a/#", "a", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c/d", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "a/+/c/#", true},
		{"a/#", "#", false},
		{"a/#", "+/b", false},
		{"a/#", "b/c", false},
		{"a/b/#", "a/+/c", false},
		{"#", "a/b", true},
		{"#", "#", true},
		// # or + in the filter needs the same or wider in the pattern
		{"a/b", "a/+", false},
		{"a/b", "a/#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"+/+", "+/#", false},
		// $ topics are not matched by leading wildcards
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker", true},
		// the tutti cases
		{"tutti/session/#", "tutti/session/+/state", true},
		{"tutti/session/#", "tutti/#", false},
		{"tutti/speaker/kitchen/#", "tutti/speaker/kitchen/clock/resp", true},
		{"tutti/speaker/kitchen/#", "tutti/speaker/+/clock/resp", false},
		{"tutti/speaker/kitchen/#", "tutti/speaker/kitchenette/clock/resp", false},
		{"tutti/session/+/cmd", "tutti/session/home/cmd", true},
		{"tutti/session/+/cmd", "tutti/session/home/state", false},
	}
	for _, tc := range tests {
		if got := filterCovers(tc.pattern, tc.filter); got != tc.want {
			t.Errorf("filterCovers(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

func TestAccess(t *testing.T) {
	speaker := access{role: RoleSpeaker, name: "kitchen"}
	member := access{role: RoleMember, name: "bob"}
	controller := access{role: RoleController, name: "ctl"}
	nobody := access{role: "guest", name: "eve"}
	tests := []struct {
		who     access
		publish bool // else subscribe
		topic   string
		want    bool
	}{
		{speaker, true, "tutti/speaker/kitchen/status", true},
		{speaker, true, "tutti/speaker/kitchen/clock/req", true},
		{speaker, true, "tutti/speaker/kitchen/clock/resp", false},
		{speaker, true, "tutti/speaker/bath/status", false},
		{speaker, true, "tutti/speaker/bath/ack", false},
		{speaker, true, "tutti/speaker/kitchen/ack", true},
		{speaker, true, "tutti/session/home/state", false},
		{speaker, true, "tutti/session/home/cmd", false},
		{speaker, true, "elsewhere", false},
		{speaker, false, "tutti/session/#", true},
		{speaker, false, "tutti/session/home/playlist", true},
		{speaker, false, "tutti/controller/status", true},
		{speaker, false, "tutti/speaker/kitchen/#", true},
		{speaker, false, "tutti/speaker/bath/status", true}, // peer fetch: where its cache is served
		{speaker, false, "tutti/speaker/bath/ack", false},
		{speaker, false, "tutti/library/song/ab", true},
		{speaker, false, "tutti/library/cmd", false},
		{speaker, false, "tutti/#", false},
		{speaker, false, "#", false},

		{member, true, "tutti/session/home/cmd", true},
		{member, true, "tutti/library/cmd", true},
		{member, true, "bob/reply", true},
		{member, true, "tutti/session/home/state", false},
		{member, true, "tutti/session/home/cmd/x", false},
		{member, true, "tutti/controller/status", false},
		{member, true, "tutti/reply", false},
		{member, true, "tutti", false},
		{member, false, "tutti/#", true},
		{member, false, "#", true},
		{member, false, "bob/reply", true},

		{controller, true, "tutti/session/home/state", true},
		{controller, false, "#", true},
		{everything, true, "tutti/speaker/x/status", true},

		{nobody, true, "elsewhere", false},
		{nobody, false, "elsewhere", false},
	}
	for _, tc := range tests {
		got := tc.who.maySubscribe(tc.topic)
		verb := "subscribe"
		if tc.publish {
			got, verb = tc.who.mayPublish(tc.topic), "publish"
		}
		if got != tc.want {
			t.Errorf("%s %q may %s %q: %v, want %v", tc.who.role, tc.who.name, verb, tc.topic, got, tc.want)
		}
	}
}
