package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestAddUserRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := AddUser(path, "kitchen", RoleSpeaker, "first"); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(path, "alice", RoleAdmin, "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(path, "kitchen", RoleSpeaker, "second"); err != nil { // replaces
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %v, want 0600", mode)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"first", "second", "alice-pw"} {
		if strings.Contains(string(raw), plain) {
			t.Errorf("file holds the password %q:\n%s", plain, raw)
		}
	}
	users, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "kitchen" || users[0].Role != RoleSpeaker || users[1].Name != "alice" || users[1].Role != RoleAdmin {
		t.Fatalf("users %+v", users)
	}
	if bcrypt.CompareHashAndPassword([]byte(users[0].PasswordHash), []byte("second")) != nil {
		t.Error("kitchen's hash does not match its new password")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestHashPassword(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("pw")) != nil {
		t.Error("hash does not verify")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("password longer than bcrypt's 72 bytes hashed")
	}
}

func TestAddUserRefusesBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	for _, tc := range []struct{ name, role, password string }{
		{"Kitchen", RoleSpeaker, "pw"}, // upper case
		{"a/b", RoleSpeaker, "pw"},     // topic separator
		{"+", RoleSpeaker, "pw"},       // wildcard
		{"", RoleSpeaker, "pw"},
		{"kitchen", "root", "pw"},
		{"kitchen", RoleSpeaker, ""},
	} {
		if err := AddUser(path, tc.name, tc.role, tc.password); err == nil {
			t.Errorf("AddUser(%q, %q, %q) succeeded", tc.name, tc.role, tc.password)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file written after refusals: %v", err)
	}
}

func TestLoadUsersRefusesBadFiles(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	user := func(name, role string) string {
		return "[[user]]\nname = \"" + name + "\"\npassword_hash = \"" + string(hash) + "\"\nrole = \"" + role + "\"\n"
	}
	for name, content := range map[string]string{
		"not toml":       "[[user]\nname=",
		"plain password": "[[user]]\nname = \"kitchen\"\npassword = \"pw\"\nrole = \"speaker\"\n",
		"not a hash":     "[[user]]\nname = \"kitchen\"\npassword_hash = \"pw\"\nrole = \"speaker\"\n",
		"unknown role":   user("kitchen", "root"),
		"bad name":       user("a/b", RoleSpeaker),
		"duplicate":      user("kitchen", RoleSpeaker) + user("kitchen", RoleAdmin),
		"wrong type":     "[[user]]\nname = 3\n",
	} {
		path := filepath.Join(t.TempDir(), "users.toml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadUsers(path)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if strings.Contains(err.Error(), string(hash)) {
			t.Errorf("%s: error quotes the hash: %v", name, err)
		}
	}
	// An empty file is a valid file with no users.
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if users, err := LoadUsers(path); err != nil || len(users) != 0 {
		t.Errorf("empty file: %v, %v", users, err)
	}
}

func TestSetPasswordAndRemoveUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	for _, u := range []struct{ name, role, pw string }{{"alice", RoleMember, "a1"}, {"bob", RoleAdmin, "b1"}} {
		if err := AddUser(path, u.name, u.role, u.pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetPassword(path, "alice", "a2"); err != nil {
		t.Fatal(err)
	}
	users, _ := LoadUsers(path)
	if len(users) != 2 || users[0].Name != "alice" || users[0].Role != RoleMember ||
		bcrypt.CompareHashAndPassword([]byte(users[0].PasswordHash), []byte("a2")) != nil {
		t.Fatalf("after passwd: %+v", users)
	}
	if err := RemoveUser(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if users, _ := LoadUsers(path); len(users) != 1 || users[0].Name != "bob" {
		t.Fatalf("after remove: %+v", users)
	}
	if SetPassword(path, "nobody", "x") == nil || RemoveUser(path, "nobody") == nil {
		t.Error("an unknown user was changed")
	}
}

// FuzzUsersFile: no users file crashes the loader, and what it accepts has
// valid names, roles and hashes.
func FuzzUsersFile(f *testing.F) {
	hash, _ := HashPassword("pw")
	f.Add([]byte("[[user]]\nname = \"alice\"\nrole = \"member\"\npassword_hash = \"" + hash + "\"\n"))
	f.Add([]byte("[[user]]\nname = \"Alice\"\n"))
	f.Add([]byte("[[user]]\npassword = \"plain\"\n"))
	f.Add([]byte("not toml ]]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "users.toml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		users, err := LoadUsers(path)
		if err != nil {
			return
		}
		for _, u := range users {
			if checkUser(u.Name, u.Role) != nil {
				t.Fatalf("accepted %+v", u)
			}
		}
	})
}
