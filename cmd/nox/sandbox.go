package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// sandboxID returns the command's first argument, the session id, and
// checks that exactly want arguments were given (-1: at least one).
func sandboxID(c *cli.Context, want int) (string, error) {
	n := c.NArg()
	if n == 0 {
		return "", usagef("%s: missing the sandbox's session ID", c.Command.Name)
	}
	if want > 0 && n != want {
		return "", usagef("%s: expected %d argument(s), got %d: %s", c.Command.Name, want, n, strings.Join(c.Args().Slice(), " "))
	}
	return c.Args().First(), nil
}

// needExtension fails with a clear line when the backend lacks ext.
func needExtension(c *cli.Context, cn *conn, ext, what string) error {
	ok, err := cn.client.Supports(c.Context, ext)
	if err != nil {
		return fmt.Errorf("backend info: %w", err)
	}
	if !ok {
		return fmt.Errorf("%s: the backend does not support it (extension %s)", what, ext)
	}
	return nil
}
