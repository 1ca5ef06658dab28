package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

func (a *app) stdinCommand() *cli.Command {
	return &cli.Command{
		Name:      "stdin",
		Usage:     "send nox's standard input to a process started with nox start --stdin",
		ArgsUsage: "ID PROC",
		Description: `Copies nox's standard input to process PROC's (see nox ps ID) as it comes,
in one streamed request, then closes the process's standard input (it reads
end-of-file) unless --keep-open:
   printf 'yes\n' | nox stdin demo 3
   tail -f events.log | nox stdin demo 3`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "keep-open", Usage: "leave the process's standard input open at the end"},
		},
		Action: func(c *cli.Context) error {
			id, pid, err := procArgs(c)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Process(c.Context, pid)
				if err != nil {
					return onProcess(id, pid, err)
				}
				if c.Bool("keep-open") {
					// One request a read: nothing closes standard input.
					buf := make([]byte, 64<<10)
					for {
						n, rerr := a.stdin.Read(buf)
						if n > 0 {
							if err := p.WriteStdin(c.Context, buf[:n]); err != nil {
								return onProcess(id, pid, fmt.Errorf("stdin: %w", err))
							}
						}
						if rerr == io.EOF {
							return nil
						}
						if rerr != nil {
							return fmt.Errorf("reading standard input: %w", rerr)
						}
					}
				}
				w := p.Stdin(c.Context)
				_, cerr := io.Copy(w, a.stdin)
				if err := w.Close(); err != nil {
					return onProcess(id, pid, fmt.Errorf("stdin: %w", err))
				}
				if cerr != nil {
					return onProcess(id, pid, fmt.Errorf("stdin: %w", cerr))
				}
				return nil
			})
		},
	}
}
