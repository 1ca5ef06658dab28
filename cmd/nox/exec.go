package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

// backendDefault is the default shown for a flag that, when not given, is
// left out of the request so that the backend's default applies.
const backendDefault = "the backend's"

// execFlags are the flags exec and sh share. Those left unset are not
// sent.
func execFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, DefaultText: backendDefault, Usage: "working directory in the sandbox"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable, KEY=VALUE (repeatable)"},
		cmdTimeoutFlag("kill the command after this long"),
		&cli.BoolFlag{Name: "ignore-exit-code", Usage: "exit 0 even when the command fails"},
		&cli.BoolFlag{Name: "no-stdin", Aliases: []string{"n"}, Usage: "do not read standard input (it is read when it is not a terminal)"},
	}
}

// execSettings are the parsed exec and sh flags.
type execSettings struct {
	workdir        string
	env            map[string]string
	timeout        time.Duration
	ignoreExitCode bool
	noStdin        bool
}

// parseExecFlags reads the shared exec flags.
func parseExecFlags(c *cli.Context) (execSettings, error) {
	s := execSettings{workdir: c.String("workdir"), ignoreExitCode: c.Bool("ignore-exit-code"), noStdin: c.Bool("no-stdin")}
	env, err := parseEnv(c.StringSlice("env"))
	if err != nil {
		return s, err
	}
	s.env = env
	s.timeout, err = cmdTimeout(c)
	return s, err
}

// cmdTimeoutFlag is the command timeout flag of exec, sh and shell. Given
// after the command name, --timeout is this flag (before it, the global
// --request-timeout), and --timeout-seconds is its old name.
func cmdTimeoutFlag(usage string) cli.Flag {
	return durationFlag("cmd-timeout", []string{"timeout", "timeout-seconds"}, 0, backendDefault, usage)
}

// cmdTimeout reads the command timeout flag: the API takes whole seconds.
func cmdTimeout(c *cli.Context) (time.Duration, error) {
	d := durationOf(c, "cmd-timeout")
	if d%time.Second != 0 {
		return 0, usagef("%s: --cmd-timeout %s: the API counts whole seconds", c.Command.Name, d)
	}
	return d, nil
}

// parseEnv parses KEY=VALUE pairs.
func parseEnv(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want KEY=VALUE", p)
		}
		env[k] = v
	}
	return env, nil
}

func (a *app) execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command (an argv, no shell) in a sandbox; exits with its exit code",
		ArgsUsage: "ID [--] CMD [ARGS...]",
		Description: `The command's output streams as it is produced when the backend supports
it. Its exit code becomes nox's exit code (unless --ignore-exit-code).
Everything after the command name belongs to the command: nox exec demo ls -la

A standard input that is not a terminal (a pipe, a file) is read to its end
and becomes the command's (echo hi | nox exec demo -- cat); --no-stdin leaves
it alone. It is sent with the request, so it is bounded (the backend's
maxStdinBytes, see nox info); stream larger input to nox start --stdin. A
backend without stdin support (extension exec.stdin) refuses input rather
than dropping it.`,
		Flags: execFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("exec: want a sandbox ID and a command: nox exec ID -- CMD [ARGS...]")
			}
			s, err := parseExecFlags(c)
			if err != nil {
				return err
			}
			id := c.Args().First()
			req := sdk.ExecRequest{Cmd: c.Args().Slice()[1:], Workdir: s.workdir, Env: s.env, Timeout: s.timeout}
			return a.withConn(c, func(cn *conn) error {
				return a.runRemote(c, cn, id, a.withStdin(req, s), s.ignoreExitCode)
			})
		},
	}
}

// withStdin gives req nox's standard input, unless it is a terminal or
// --no-stdin was given.
func (a *app) withStdin(req sdk.ExecRequest, s execSettings) sdk.ExecRequest {
	if !s.noStdin && a.stdin != nil && !isTerminal(a.stdin) {
		req.Stdin = a.stdin
	}
	return req
}

func (a *app) shCommand() *cli.Command {
	flags := append(execFlags(), shellFlag("the shell"))
	return &cli.Command{
		Name:      "sh",
		Usage:     "run a shell script in a sandbox (shell -c SCRIPT); exits with its exit code",
		ArgsUsage: "ID 'SCRIPT'",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("sh: want a sandbox ID and one script argument (quote it): nox sh ID 'echo $HOME'")
			}
			s, err := parseExecFlags(c)
			if err != nil {
				return err
			}
			argv, err := shellArgv(c, c.Args().Get(1))
			if err != nil {
				return err
			}
			id := c.Args().First()
			req := sdk.ExecRequest{Cmd: argv, Workdir: s.workdir, Env: s.env, Timeout: s.timeout}
			return a.withConn(c, func(cn *conn) error {
				return a.runRemote(c, cn, id, a.withStdin(req, s), s.ignoreExitCode)
			})
		},
	}
}

// shellFlag is the --shell flag of sh and shell; usage says what it is.
func shellFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "shell", Value: sdk.DefaultShell, Usage: usage + ": " + strings.Join(sdk.Shells(), " or ")}
}

// shellArgv returns the argv running script with the --shell flag's shell,
// or a usage error.
func shellArgv(c *cli.Context, script string) ([]string, error) {
	argv, err := sdk.ShellCommand(c.String("shell"), script)
	if err != nil {
		return nil, usagef("%s: --shell %q: want %s", c.Command.Name, c.String("shell"), strings.Join(sdk.Shells(), " or "))
	}
	return argv, nil
}

// runRemote runs req in sandbox id: streamed to stdout and stderr, or as
// one JSON object with --json. A non-zero exit code becomes an exitStatus.
func (a *app) runRemote(c *cli.Context, cn *conn, id string, req sdk.ExecRequest, ignoreExit bool) error {
	sb := cn.client.Sandbox(id)
	asJSON := readGlobals(c).json
	var res *sdk.ExecResult
	var err error
	if asJSON {
		res, err = sb.Exec(c.Context, req)
	} else {
		res, err = sb.ExecStream(c.Context, req, sdk.StreamOptions{Stdout: a.stdout, Stderr: a.stderr})
	}
	if err != nil {
		if req.Stdin != nil && (errors.Is(err, sdk.ErrUnsupported) || errors.Is(err, sdk.ErrTooLarge)) {
			err = &restated{err: err, msg: withoutSDKPrefix(err.Error()) + " (give --no-stdin, or </dev/null, to run it without)"}
		}
		return onSandbox(id, fmt.Errorf("exec %s: %w", cmdString(req.Cmd), err))
	}
	if asJSON {
		if err := a.printJSON(aboutSandbox{id: id, v: res}); err != nil {
			return err
		}
	} else {
		a.execNotes(res)
	}
	if res.ExitCode == 0 || ignoreExit {
		return nil
	}
	return exitStatus(clampExit(res.ExitCode))
}

// execNotes tells on stderr what the exec flags say about a result.
func (a *app) execNotes(res *sdk.ExecResult) {
	note := func(s string) { fmt.Fprintf(a.stderr, "%s %s\n", a.errColor.yellow("nox:"), s) }
	if res.TimedOut {
		note(fmt.Sprintf("the command timed out and was killed (exit %d); raise --cmd-timeout", res.ExitCode))
	}
	if res.OOMKilled {
		note("the command was killed for exceeding the sandbox's memory limit")
	}
	if res.StdoutTruncated {
		note("stdout was truncated by the backend's output cap")
	}
	if res.StderrTruncated {
		note("stderr was truncated by the backend's output cap")
	}
}

// clampExit maps a remote exit code to a process exit code.
func clampExit(code int) int {
	if code < 1 || code > 255 {
		return exitError
	}
	return code
}

// cmdString shows an argv briefly for error messages.
func cmdString(argv []string) string {
	s := strings.Join(argv, " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("%q", s)
}
