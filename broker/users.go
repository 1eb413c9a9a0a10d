package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/bcrypt"

	"github.com/tutti-audio/tutti/internal/atomicfile"
	"github.com/tutti-audio/tutti/protocol"
)

// Roles a user can have; see acl.go for what each may do.
const (
	RoleAdmin      = "admin"      // everything
	RoleController = "controller" // everything: the controller publishes state and replies
	RoleMember     = "member"     // sends signed commands; sees, joins and controls the sessions whose ACL names it
	RoleSpeaker    = "speaker"    // its own topics and its assigned session; the MQTT username is the speaker id
	// RoleHomeAssistant is Home Assistant's: it reads the bridge's topics and
	// the statuses, and publishes only to the bridge's command topics (the
	// bridge, an admin, turns them into requests) and outside tutti/.
	RoleHomeAssistant = "homeassistant"
)

// Roles lists every valid role.
var Roles = []string{RoleAdmin, RoleController, RoleMember, RoleSpeaker, RoleHomeAssistant}

// User is one entry of the users file. PasswordHash is a bcrypt hash, never
// the password itself.
type User struct {
	Name         string `toml:"name"`
	PasswordHash string `toml:"password_hash"`
	Role         string `toml:"role"`
}

// usersFile is the TOML document: a list of [[user]] tables.
type usersFile struct {
	Users []User `toml:"user"`
}

// LoadUsers reads and checks a users file. Unknown keys are errors, so a
// mistyped "password = ..." line is caught rather than silently ignored.
func LoadUsers(path string) ([]User, error) {
	var doc usersFile
	meta, err := toml.DecodeFile(path, &doc)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if undecoded := meta.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("users file %s: unknown key %q (want name, password_hash, role)", path, undecoded[0].String())
	}
	seen := make(map[string]bool, len(doc.Users))
	for i, u := range doc.Users {
		if err := checkUser(u.Name, u.Role); err != nil {
			return nil, fmt.Errorf("users file %s: user %d: %w", path, i+1, err)
		}
		// The error never quotes the hash.
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return nil, fmt.Errorf("users file %s: user %q: password_hash is not a bcrypt hash", path, u.Name)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("users file %s: user %q appears twice", path, u.Name)
		}
		seen[u.Name] = true
	}
	return doc.Users, nil
}

// checkUser validates a name and a role.
func checkUser(name, role string) error {
	// The name is a topic level for speakers (tutti/speaker/<name>/...), so
	// every name follows the same rule, whatever the role.
	if err := protocol.ValidName(name); err != nil {
		return fmt.Errorf("user name: %w", err)
	}
	if !slices.Contains(Roles, role) {
		return fmt.Errorf("user %q: unknown role %q (want one of %v)", name, role, Roles)
	}
	return nil
}

// HashPassword returns the bcrypt hash to store in the users file.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(hash), nil
}

// AddUser adds a user to the users file, or replaces the user of that name.
// The file is created if missing and replaced atomically (temp file, fsync,
// rename), with mode 0600. A running broker picks the change up by itself.
func AddUser(path, name, role, password string) error {
	if err := checkUser(name, role); err != nil {
		return err
	}
	users, err := LoadUsers(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	user := User{Name: name, PasswordHash: hash, Role: role}
	i := slices.IndexFunc(users, func(u User) bool { return u.Name == name })
	if i >= 0 {
		users[i] = user
	} else {
		users = append(users, user)
	}
	return writeUsersFile(path, users)
}

// SetPassword changes a user's password, keeping its role. A running broker
// ends the connections logged in with the old one once it reloads the file.
func SetPassword(path, name, password string) error {
	users, i, err := findUser(path, name)
	if err != nil {
		return err
	}
	return AddUser(path, name, users[i].Role, password)
}

// RemoveUser takes a user out of the users file. A running broker ends its
// connections once it reloads the file (within a second).
func RemoveUser(path, name string) error {
	users, i, err := findUser(path, name)
	if err != nil {
		return err
	}
	return writeUsersFile(path, slices.Delete(users, i, i+1))
}

// findUser loads the users file and finds the user called name in it.
func findUser(path, name string) (users []User, i int, err error) {
	if users, err = LoadUsers(path); err != nil {
		return nil, 0, err
	}
	if i = slices.IndexFunc(users, func(u User) bool { return u.Name == name }); i < 0 {
		return nil, 0, fmt.Errorf("users file %s: no user %q", path, name)
	}
	return users, i, nil
}

func writeUsersFile(path string, users []User) error {
	var buf bytes.Buffer
	buf.WriteString("# tutti MQTT users. Passwords are bcrypt hashes: add users with `tutti user add`.\n\n")
	if err := toml.NewEncoder(&buf).Encode(usersFile{Users: users}); err != nil {
		return fmt.Errorf("encode users: %w", err)
	}
	return atomicfile.Write(path, buf.Bytes(), 0o600)
}

// userDirectory holds the users of a users file and reloads them when the
// file changes, so `tutti user add` takes effect without a broker restart.
type userDirectory struct {
	path   string // "" = no users
	logger *slog.Logger

	mu         sync.Mutex
	byName     map[string]User
	loaded     os.FileInfo // the file as it was when last loaded
	generation uint64      // counts the loads
	cost       int         // the most common bcrypt cost of the users' hashes; 0 if none
	failure    string      // why the last reload failed; "" if it did not
}

// newUserDirectory loads path; a broken file is an error here, while later
// reloads keep the last good users.
func newUserDirectory(path string, logger *slog.Logger) (*userDirectory, error) {
	d := &userDirectory{path: path, logger: logger, byName: map[string]User{}}
	if path == "" {
		return d, nil
	}
	return d, d.load()
}

// load reads the file. The file is stat'ed first: if it changes while being
// read, the next refresh sees a difference and reads it again.
func (d *userDirectory) load() error {
	info, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	users, err := LoadUsers(d.path)
	if err != nil {
		return err
	}
	byName := make(map[string]User, len(users))
	costs := map[int]int{} // bcrypt cost -> users
	commonCost := 0
	for _, u := range users {
		byName[u.Name] = u
		cost, _ := bcrypt.Cost([]byte(u.PasswordHash)) // LoadUsers checked it
		costs[cost]++
		if costs[cost] > costs[commonCost] || costs[cost] == costs[commonCost] && cost > commonCost {
			commonCost = cost
		}
	}
	d.mu.Lock()
	d.byName, d.loaded, d.cost = byName, info, commonCost
	d.generation++
	d.mu.Unlock()
	return nil
}

// refresh reloads the file if it was replaced or modified since last loaded.
func (d *userDirectory) refresh() {
	if d.path == "" {
		return
	}
	info, err := os.Stat(d.path)
	d.mu.Lock()
	unchanged := err == nil && d.loaded != nil && os.SameFile(info, d.loaded) &&
		info.ModTime().Equal(d.loaded.ModTime()) && info.Size() == d.loaded.Size()
	d.mu.Unlock()
	if unchanged {
		return
	}
	err = d.load()
	// The file is checked every second (revocation.go): a broken one is
	// logged once, not at every check.
	d.mu.Lock()
	repeated := err != nil && err.Error() == d.failure
	d.failure = ""
	if err != nil {
		d.failure = err.Error()
	}
	d.mu.Unlock()
	switch {
	case err == nil:
		d.logger.Info("users file reloaded", "path", d.path)
	case !repeated:
		d.logger.Error("users file not reloaded; keeping the users loaded before", "error", err)
	}
}

func (d *userDirectory) lookup(name string) (User, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.byName[name]
	return u, ok
}

// loads returns how many times the file was loaded: a change means the
// users may have changed.
func (d *userDirectory) loads() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.generation
}

// hashCost returns the most common bcrypt cost of the users' hashes
// (bcrypt.DefaultCost without users): an unknown user is refused after a
// comparison of that cost, so that its refusal takes as long as most
// users' wrong passwords.
func (d *userDirectory) hashCost() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cost == 0 {
		return bcrypt.DefaultCost
	}
	return d.cost
}

func (d *userDirectory) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byName)
}
