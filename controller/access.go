package controller

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// This file decides who asks and whether they may. A command signed with a
// user name (protocol.UserTopic) comes from that user, as the broker lets a
// user publish only under its own name; an unsigned one is anonymous and is
// obeyed only by an open (demo) controller.

// Roles of the broker's users file (broker/users.go), as Options.Roles
// reports them.
const (
	roleAdmin      = "admin"      // everything
	roleController = "controller" // the controllers: everything, like admins
	roleMember     = "member"     // people: what the sessions' ACLs grant
	roleSpeaker    = "speaker"    // a device: no commands
)

// asker is who sent a request, once accepted as someone who may send
// commands at all.
type asker struct {
	user  string // "" for anonymous
	admin bool   // may do everything
}

// name is how errors call the asker.
func (a asker) name() string {
	if a.user == "" {
		return "anonymous"
	}
	return a.user
}

// askerOf accepts or refuses the sender of a request: user is the name the
// command topic is signed with ("" for none), role the user's role.
func askerOf(user, role string, open bool) (asker, error) {
	if user == "" {
		if open {
			return asker{admin: true}, nil
		}
		return asker{}, fmt.Errorf("anonymous requests are refused: publish to the command topic followed by /<your user name>")
	}
	switch role {
	case roleAdmin, roleController:
		return asker{user: user, admin: true}, nil
	case roleMember:
		return asker{user: user}, nil
	case roleSpeaker:
		return asker{}, fmt.Errorf("%s is a speaker: speakers may not send commands", user)
	}
	return asker{}, fmt.Errorf("%s is not a known user", user)
}

// right is what a session command needs of its session's ACL.
type right int

const (
	rightSee     right = iota // read its state, playlist and status
	rightJoin                 // move speakers into it and out of it
	rightControl              // change it
)

// rightFor says which right a session command needs.
func rightFor(cmd string) right {
	switch cmd {
	case protocol.CmdStatus:
		return rightSee
	case protocol.CmdJoin, protocol.CmdLeave:
		return rightJoin
	}
	return rightControl
}

// may checks that a has right r on the session name with ACL acl; the error
// names what is missing.
func (a asker) may(r right, name string, acl protocol.ACL) error {
	if a.admin {
		return nil
	}
	var list []string
	var verb string
	switch r {
	case rightSee:
		list, verb = acl.See, "see"
	case rightJoin:
		list, verb = acl.Join, "join"
	default:
		list, verb = acl.Control, "control"
	}
	if protocol.Allows(list, a.user) {
		return nil
	}
	return fmt.Errorf("%s may not %s session %s", a.name(), verb, name)
}

// mayAdminister checks that a may run cmd, a command only admins may use.
func (a asker) mayAdminister(cmd string) error {
	if a.admin {
		return nil
	}
	what := "sessions"
	switch cmd {
	case protocol.CmdForget:
		what = "speakers"
	case protocol.CmdRemove:
		what = "songs"
	}
	return fmt.Errorf("%s may not %s %s: only admins may", a.name(), cmd, what)
}

// sameACL says whether two ACLs grant the same.
func sameACL(a, b protocol.ACL) bool {
	return slices.Equal(a.See, b.See) && slices.Equal(a.Join, b.Join) && slices.Equal(a.Control, b.Control)
}

// checkACL validates an ACL from a request: every entry is "*" or a user
// name. It returns a copy whose lists are never nil.
func checkACL(acl protocol.ACL) (protocol.ACL, error) {
	var out protocol.ACL
	for _, l := range []struct {
		name string
		in   []string
		out  *[]string
	}{{"see", acl.See, &out.See}, {"join", acl.Join, &out.Join}, {"control", acl.Control, &out.Control}} {
		if len(l.in) > maxACLEntries {
			return out, fmt.Errorf("acl %s: %d entries, at most %d", l.name, len(l.in), maxACLEntries)
		}
		*l.out = []string{}
		for _, user := range l.in {
			if user != "*" {
				if err := protocol.ValidName(user); err != nil {
					return out, fmt.Errorf("acl %s: %w", l.name, err)
				}
			}
			if !slices.Contains(*l.out, user) {
				*l.out = append(*l.out, user)
			}
		}
	}
	return out, nil
}

// maxACLEntries bounds each list of an ACL, so SessionInfo stays small.
const maxACLEntries = 256

// Per-user command rate: a token bucket of commandBurst commands that
// refills at commandRate per second. Anonymous requests share one bucket.
const (
	commandRate  = 20
	commandBurst = 40
	// maxBuckets bounds the users tracked; beyond it, users whose bucket
	// is full again are forgotten (they lose nothing).
	maxBuckets = 1000
)

// rateLimiter is a token bucket per user. Safe for concurrent use: the
// session and library loops share it.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was right
}

func newRateLimiter(rate, burst float64) *rateLimiter {
	return &rateLimiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one token of user's bucket at now, or says why it cannot.
func (l *rateLimiter) allow(user string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[user]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[user] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		return fmt.Errorf("rate limited: more than %g commands per second (bursts of %g); wait %v",
			l.rate, l.burst, time.Duration((1-b.tokens)/l.rate*float64(time.Second)).Round(time.Millisecond))
	}
	b.tokens--
	return nil
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*rate)
		b.at = now
	}
}

// forgetFull drops the buckets that have refilled to the brim.
func (l *rateLimiter) forgetFull(now time.Time) {
	for user, b := range l.buckets {
		if b.refill(now, l.rate, l.burst); b.tokens >= l.burst {
			delete(l.buckets, user)
		}
	}
}
