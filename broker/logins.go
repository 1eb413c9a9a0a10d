package broker

import (
	"crypto/rand"
	"log/slog"
	"runtime"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/tutti-audio/tutti/clock"
)

// Every login costs a bcrypt comparison, tens of milliseconds of CPU by
// design. Password guessing from many connections at once would take the
// hub's CPU from everyone (16 guessing threads slowed others' commands 15
// times), so logins checks passwords on half the cores at most, one at a
// time per source address, and a source that keeps failing waits longer
// and longer before its next password is checked at all. Only the failing
// source waits: a user logging in from another address is not locked out,
// and waits for at most one check per other source before its own. And an
// unknown user is refused only after a comparison of the same cost, so
// that the time of a refusal does not tell which user names exist.

const (
	// loginFreeFailures is how many failed logins a source may make
	// before it has to wait: a person mistyping a password, a speaker
	// retrying with an old one.
	loginFreeFailures = 5
	// After that, each failure doubles the wait before the source's next
	// password is checked, from loginBackoffBase to at most
	// loginBackoffMax: about 60 guesses an hour.
	loginBackoffBase = time.Second
	loginBackoffMax  = time.Minute
	// loginFailureMemory is how long a source's failures are remembered
	// after its last one. A successful login does not clear them: an
	// attacker with an account of its own could otherwise interleave its
	// logins with guesses.
	loginFailureMemory = 15 * time.Minute
	// maxLoginSources bounds the memory of failures. Beyond it, sources
	// whose failures are forgotten are swept out; if none is, a new source
	// goes untracked (the checks at once still bound the CPU).
	maxLoginSources = 4096
)

// logins checks passwords against the users file.
type logins struct {
	users  *userDirectory
	clock  clock.Clock
	logger *slog.Logger
	slots  chan struct{} // a token per password being checked: see newLogins

	mu       sync.Mutex
	failures map[string]*loginFailures // by source (sourceOf)
	turns    map[string]*sourceTurn    // sources with logins being checked or waiting
	dummies  map[int][]byte            // a hash of no one's password, per bcrypt cost
}

// sourceTurn lets one login of a source at a time be checked.
type sourceTurn struct {
	token   chan struct{} // held by the login being checked
	waiting int           // logins holding or waiting for the token
}

// loginFailures are a source's recent failed logins.
type loginFailures struct {
	count int
	last  time.Time
	// Refusals without a check are logged at most once per
	// refusalLogInterval: a refused guesser reconnects at once.
	refusals logPacer
}

// loginThrottled is verify's refusal of a login from a source that must
// wait; verify logs it itself, sparingly.
const loginThrottled = "too many failed logins from this source"

func newLogins(users *userDirectory, clock clock.Clock, logger *slog.Logger) *logins {
	// Passwords are checked on half the cores at most, so that the other
	// half keeps serving clients whatever the load of logins.
	slots := max(1, runtime.GOMAXPROCS(0)/2)
	return &logins{users: users, clock: clock, logger: logger, slots: make(chan struct{}, slots),
		failures: map[string]*loginFailures{}, turns: map[string]*sourceTurn{}, dummies: map[int][]byte{}}
}

// verify checks the login of cl as user name with password, and says why
// it is refused, or "" if it is not. A successful login is recorded on the
// client's connection (see revocation.go).
func (l *logins) verify(cl *mqtt.Client, name string, password []byte) string {
	source := sourceOf(cl.Net.Remote)
	if l.throttled(source) {
		return loginThrottled
	}
	defer l.takeTurn(source)()
	l.slots <- struct{}{}
	defer func() { <-l.slots }()
	// Failures of this source may have come in while this login waited
	// for its turn: 16 guesses sent at once get 5 checks, not 16.
	if l.throttled(source) {
		return loginThrottled
	}
	l.users.refresh()
	u, known := l.users.lookup(name)
	hash := []byte(u.PasswordHash)
	if !known {
		hash = l.dummy(l.users.hashCost())
	}
	err := bcrypt.CompareHashAndPassword(hash, password)
	switch {
	case !known:
		l.failed(source)
		return "unknown user"
	case err != nil:
		l.failed(source)
		return "wrong password"
	}
	if c, ok := connOf(cl); ok {
		c.login.Store(&credential{user: u.Name, hash: u.PasswordHash})
	}
	return ""
}

// takeTurn waits until no other login of source is being checked, and
// returns the function that ends this one's turn.
func (l *logins) takeTurn(source string) (done func()) {
	l.mu.Lock()
	t, ok := l.turns[source]
	if !ok {
		t = &sourceTurn{token: make(chan struct{}, 1)}
		l.turns[source] = t
	}
	t.waiting++
	l.mu.Unlock()
	t.token <- struct{}{}
	return func() {
		<-t.token
		l.mu.Lock()
		defer l.mu.Unlock()
		if t.waiting--; t.waiting == 0 {
			delete(l.turns, source)
		}
	}
}

// throttled reports whether source must still wait before its next
// password is checked, and logs the refusal if so.
func (l *logins) throttled(source string) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failures[source]
	switch {
	case !ok:
		return false
	case now.Sub(f.last) >= loginFailureMemory:
		delete(l.failures, source)
		return false
	case f.count < loginFreeFailures:
		return false
	}
	wait := f.last.Add(loginBackoff(f.count)).Sub(now)
	if wait <= 0 {
		return false
	}
	if count, due := f.refusals.due(now); due {
		l.logger.Warn("mqtt logins refused unchecked: too many failed logins from their source",
			"source", source, "failures", f.count, "refused", count, "next_check_in", wait.Round(time.Millisecond))
	}
	return true
}

// loginBackoff is the wait after count failures, count >= loginFreeFailures.
func loginBackoff(count int) time.Duration {
	d := loginBackoffBase
	for range count - loginFreeFailures {
		if d >= loginBackoffMax {
			break
		}
		d *= 2
	}
	return min(d, loginBackoffMax)
}

// failed records a failed login from source.
func (l *logins) failed(source string) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failures[source]
	if !ok {
		if len(l.failures) >= maxLoginSources {
			for s, old := range l.failures {
				if now.Sub(old.last) >= loginFailureMemory {
					delete(l.failures, s)
				}
			}
		}
		if len(l.failures) >= maxLoginSources {
			return
		}
		f = &loginFailures{}
		l.failures[source] = f
	}
	f.count++
	f.last = now
}

// dummy returns a bcrypt hash of cost that no password matches, made
// once per cost: an unknown user's refusal then costs what a known user's
// wrong password does.
func (l *logins) dummy(cost int) []byte {
	l.mu.Lock()
	hash, ok := l.dummies[cost]
	l.mu.Unlock()
	if ok {
		return hash
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	hash, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		// Not seen: cost was read from a hash by bcrypt, which checks
		// it. A default-cost hash still refuses every password.
		hash, _ = bcrypt.GenerateFromPassword(secret, bcrypt.DefaultCost)
	}
	l.mu.Lock()
	l.dummies[cost] = hash
	l.mu.Unlock()
	return hash
}
