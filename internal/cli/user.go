package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tutti-audio/tutti/broker"
)

// runUser manages the broker's users file: tutti user add NAME.
func runUser(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: tutti user add [--users FILE] [--role ROLE] NAME   (password read from stdin)")
	}
	fs := newFlags(e, "user add", "[flags] NAME   (the password is read from the first line of stdin)")
	users := fs.String("users", "tutti-data/users.toml", "users file")
	role := fs.String("role", "member", "admin, controller, member or speaker")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("name one user")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return fmt.Errorf("no password on stdin: %v", err)
	}
	if err := broker.AddUser(*users, fs.Arg(0), *role, password); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "user %s (%s) written to %s\n", fs.Arg(0), *role, *users)
	return nil
}
