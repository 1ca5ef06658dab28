package main

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a process's output (stdout to stdout, stderr to stderr); -f follows it",
		ArgsUsage: "ID PROC",
		Description: `Prints the output the backend kept of process PROC (see nox ps ID), byte
for byte, from offset --from (0: all it keeps). With --follow it goes on
printing new output until the process ends, resuming by itself if the
connection drops (no byte is lost or repeated); Ctrl-C stops following and
leaves the process running. Output the backend dropped from its buffer
before it was printed is reported on stderr. With --json: one object a
line, {"offset", "stream", "data" or "dataBase64", "dropped"}.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new output until the process ends"},
			&cli.Int64Flag{Name: "from", Usage: "offset of the first byte to print (bytes of output before it)"},
		},
		Action: func(c *cli.Context) error {
			id, pid, err := procArgs(c)
			if err != nil {
				return err
			}
			if c.Int64("from") < 0 {
				return usagef("logs: --from %d: want an offset of 0 or more", c.Int64("from"))
			}
			opts := sdk.OutputOptions{From: c.Int64("from"), NoFollow: !c.Bool("follow")}
			asJSON := readGlobals(c).json
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Process(c.Context, pid)
				if err != nil {
					return onProcess(id, pid, err)
				}
				for ch, err := range p.OutputWith(c.Context, opts) {
					if err != nil {
						return onProcess(id, pid, fmt.Errorf("output: %w", err))
					}
					if asJSON {
						if err := a.printChunkJSON(ch); err != nil {
							return err
						}
						continue
					}
					if err := a.printChunk(ch); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

// printChunk writes a chunk of output to stdout or stderr, and a dropped
// range as a note on stderr.
func (a *app) printChunk(ch sdk.OutputChunk) error {
	if ch.Dropped > 0 {
		fmt.Fprintf(a.stderr, "%s %d bytes of output before offset %d were dropped from the backend's buffer\n",
			a.errColor.yellow("nox:"), ch.Dropped, ch.Offset)
	}
	w := a.stdout
	if ch.Stream == "stderr" {
		w = a.stderr
	}
	if _, err := w.Write(ch.Data); err != nil {
		return fmt.Errorf("writing %s: %w", ch.Stream, err)
	}
	return nil
}

// chunkJSON is the JSON line of logs --json.
type chunkJSON struct {
	Offset     int64  `json:"offset"`
	Stream     string `json:"stream,omitempty"`
	Data       string `json:"data,omitempty"`
	DataBase64 []byte `json:"dataBase64,omitempty"`
	Dropped    int64  `json:"dropped,omitempty"`
}

// printChunkJSON writes a chunk as one JSON line.
func (a *app) printChunkJSON(ch sdk.OutputChunk) error {
	j := chunkJSON{Offset: ch.Offset, Stream: ch.Stream, Dropped: ch.Dropped}
	if utf8.Valid(ch.Data) {
		j.Data = string(ch.Data)
	} else {
		j.DataBase64 = ch.Data
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func (a *app) waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "wait until a process ends; exits with its exit code",
		ArgsUsage: "ID PROC",
		Description: `Waits, for as long as it takes, until process PROC (see nox ps ID) ends,
and exits with its exit code (--json: prints its record too). Ctrl-C stops
waiting and leaves the process running. A process lost by a backend restart
is an error.`,
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
				rec, err := p.Wait(c.Context)
				if err != nil {
					return onProcess(id, pid, fmt.Errorf("wait: %w", err))
				}
				return a.ended(id, rec, readGlobals(c).json)
			})
		},
	}
}

// ended reports how a process ended (its record with asJSON, notes on
// stderr otherwise) and returns its exit code as nox's.
func (a *app) ended(id string, rec sdk.ProcessInfo, asJSON bool) error {
	if asJSON {
		if err := a.printJSON(aboutSandbox{id: id, v: rec}); err != nil {
			return err
		}
	}
	switch {
	case rec.State == sdk.ProcessLost:
		return onProcess(id, rec.ID, fmt.Errorf("%s", endText(rec)))
	case rec.TimedOut, rec.OOMKilled, rec.Signal != "":
		if !asJSON {
			fmt.Fprintf(a.stderr, "%s process %s %s\n", a.errColor.yellow("nox:"), rec.ID, endText(rec))
		}
	}
	if rec.ExitCode == 0 {
		return nil
	}
	return exitStatus(clampExit(rec.ExitCode))
}
