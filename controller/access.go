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
	case protocol.CmdScan:
		what = "the music folders"
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

// Command rates. Each user has a token bucket per command topic (one
// session's, the library's, the sessions') and one over all of its
// commands; a command takes a token from both. Anonymous requests share one
// user. A remote that commands every session at once (Home Assistant's
// "pause everything", a scene) spreads over the topic buckets and passes;
// one user flooding any topic, or all of them, is refused beyond these rates.
const (
	// topicCommandRate and topicCommandBurst bound one user's commands to
	// one topic: a person taps a few commands a second, and a client
	// replaying a queue of them sends a few dozen at once.
	topicCommandRate  = 20
	topicCommandBurst = 40
	// userCommandRate and userCommandBurst bound a user's commands over
	// every topic: a scene sending a few commands to each of up to a
	// hundred sessions at once passes, and so do a few a second to each
	// of twenty sessions, while the controller, which answers thousands
	// of commands a second, stays free for everyone else.
	userCommandRate  = 100
	userCommandBurst = 200
	// maxBuckets bounds the buckets tracked by each limiter; beyond it,
	// buckets that are full again are forgotten (their users lose nothing).
	maxBuckets = 1000
)

// commandLimiter limits the commands of each user, per command topic and
// over all topics. Safe for concurrent use: the session and library loops
// share it.
type commandLimiter struct {
	perTopic, perUser *rateLimiter
}

func newCommandLimiter() *commandLimiter {
	return &commandLimiter{
		perTopic: newRateLimiter(topicCommandRate, topicCommandBurst),
		perUser:  newRateLimiter(userCommandRate, userCommandBurst),
	}
}

// allow takes a token for one command of user on the command topic topic at
// now, or says why it cannot.
func (l *commandLimiter) allow(user, topic string, now time.Time) error {
	key := user + " " + topic // user names contain no spaces
	if wait, ok := l.perTopic.take(key, now); !ok {
		return fmt.Errorf("rate limited: more than %d commands per second to one session or topic (bursts of %d); wait %v",
			topicCommandRate, topicCommandBurst, wait.Round(time.Millisecond))
	}
	if wait, ok := l.perUser.take(user, now); !ok {
		l.perTopic.giveBack(key)
		return fmt.Errorf("rate limited: more than %d commands per second in all (bursts of %d); wait %v",
			userCommandRate, userCommandBurst, wait.Round(time.Millisecond))
	}
	return nil
}

// rateLimiter is a token bucket per key. Safe for concurrent use.
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

// take takes one token of key's bucket at now; when it is empty, it reports
// how long until the next token.
func (l *rateLimiter) take(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// giveBack returns a token taken for a command that was refused after all.
func (l *rateLimiter) giveBack(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		b.tokens = min(l.burst, b.tokens+1)
	}
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
