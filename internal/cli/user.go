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

// runUser manages the broker's users file: tutti user add, passwd, remove.
func runUser(ctx context.Context, e *env, args []string) error {
	const usage = "usage: tutti user add|passwd|remove [--users FILE] [--role ROLE] NAME   (add and passwd read the password from stdin)"
	if len(args) == 0 {
		return errors.New(usage)
	}
	sub := args[0]
	fs := newFlags(e, "user "+sub, "[flags] NAME")
	users := fs.String("users", "tutti-data/users.toml", "users file (a running broker reloads it by itself)")
	role := fs.String("role", "member", "add: "+strings.Join(broker.Roles, ", "))
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("name one user")
	}
	name := fs.Arg(0)
	switch sub {
	case "add", "passwd":
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		password := strings.TrimRight(line, "\r\n")
		if password == "" {
			return fmt.Errorf("no password on stdin: %v", err)
		}
		if sub == "add" {
			err = broker.AddUser(*users, name, *role, password)
		} else {
			err = broker.SetPassword(*users, name, password)
		}
		if err != nil {
			return err
		}
	case "remove":
		if err := broker.RemoveUser(*users, name); err != nil {
			return err
		}
	default:
		return errors.New(usage)
	}
	fmt.Fprintf(e.stdout, "user %s: %s done in %s\n", name, sub, *users)
	return nil
}
