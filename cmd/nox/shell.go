package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chzyer/readline"
	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

const shellHelp = `Each line runs as SHELL -c LINE in the current directory of the sandbox, so
pipes, redirections, && and variables work. Built in:
  cd [DIR]   change directory (checked in the sandbox; default /workspace);
             a cd line with shell operators (cd d && make) runs as one command
  pwd        print the current directory
  touch      with no arguments: extend the sandbox's TTL
  help       this help
  exit [N]   leave (also Ctrl-D); the status is N or the last command's
Ctrl-C stops the running command.`

func (a *app) shellCommand() *cli.Command {
	return &cli.Command{
		Name:      "shell",
		Usage:     "interactive shell in a sandbox",
		ArgsUsage: "ID",
		Description: `On a terminal, when the backend has terminals (extension
processes.terminal), runs a login shell on a terminal in the sandbox, as ssh
does: bash where the sandbox has it, else sh (--shell names one), with
every key (Ctrl-C, Ctrl-D, arrows) going to it, full-screen programs (vim,
top, less) working and the remote terminal following this one's size. It
ends when the shell exits, with its exit code. --no-pty, a standard input
that is not a terminal, or a backend without terminals give the line mode:

` + shellHelp + `

In line mode on a terminal the prompt shows the session and directory, with
line editing and history; otherwise lines are read from standard input.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, DefaultText: backendDefault, Usage: "starting directory"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable, KEY=VALUE (repeatable)"},
			cmdTimeoutFlag("kill each command after this long (line mode)"),
			shellFlag("the shell to run (line mode: the shell running each line)"),
			&cli.BoolFlag{Name: "no-pty", Aliases: []string{"T"}, Usage: "use the line mode even on a terminal"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			if readGlobals(c).json {
				return usagef("shell is interactive; --json does not apply (use exec or sh)")
			}
			env, err := parseEnv(c.StringSlice("env"))
			if err != nil {
				return err
			}
			if _, err := shellArgv(c, ""); err != nil {
				return err
			}
			timeout, err := cmdTimeout(c)
			if err != nil {
				return err
			}
			s := &shellSession{app: a, id: id, shell: c.String("shell"), env: env,
				timeout: timeout, workdir: c.String("workdir")}
			return a.withConn(c, func(cn *conn) error {
				s.sb = cn.client.Sandbox(id)
				if !c.Bool("no-pty") && isTerminal(a.stdin) {
					if ok, err := cn.client.Supports(c.Context, sdk.ExtProcessesTerminal); err == nil && ok {
						return a.terminalShell(c, s)
					}
				}
				return s.run(c.Context)
			})
		},
	}
}

// terminalShell runs the shell of s on a terminal in the sandbox and
// connects this terminal to it.
func (a *app) terminalShell(c *cli.Context, s *shellSession) error {
	var cmd []string // the SDK's default: bash if there, else sh
	if c.IsSet("shell") {
		cmd = []string{s.shell, "-l"}
	}
	t, err := s.sb.Terminal(c.Context, sdk.TerminalOptions{Cmd: cmd, Size: a.termSize(), Env: s.env, Workdir: s.workdir, Tag: "shell"})
	if err != nil {
		return onSandbox(s.id, fmt.Errorf("shell: %w", err))
	}
	rec, err := a.runTerminal(c.Context, t, false)
	return a.terminalEnded(s.id, t.Process().ID(), rec, err)
}

// shellSession is one interactive shell on a sandbox.
type shellSession struct {
	app     *app
	sb      *sdk.Sandbox
	id      string
	shell   string // one of sdk.Shells
	env     map[string]string
	timeout time.Duration
	workdir string
	last    int // the last command's exit code
	tty     bool

	// On a terminal, signals cancel the running command (SIGINT) or end
	// the shell (SIGTERM).
	mu         sync.Mutex
	cancelCmd  context.CancelFunc
	terminated atomic.Bool
}

// lineSource reads the lines a user types.
type lineSource interface {
	readLine(prompt string) (string, error)
	Close() error
}

// run checks the sandbox and the starting directory, then reads and runs
// lines until exit or end of input.
func (s *shellSession) run(ctx context.Context) error {
	a := s.app
	s.tty = isTerminal(a.stdin) && isTerminal(a.stdout)
	start := s.workdir
	if start == "" {
		start = "." // the backend's default working directory (no workdir is sent)
	}
	if err := s.enter(ctx, start); err != nil {
		return err
	}

	var src lineSource
	base := ctx
	if s.tty {
		rl, err := newReadlineSource(a)
		if err != nil {
			return fmt.Errorf("shell: terminal: %w", err)
		}
		src = rl
		// On a terminal Ctrl-C stops the running command, not the shell.
		base = context.WithoutCancel(ctx)
		fmt.Fprintf(a.stdout, "Connected to sandbox %q. Type help for help, exit or Ctrl-D to leave.\n", s.id)
	} else {
		src = &plainSource{r: bufio.NewReader(a.stdin)}
	}
	defer src.Close()

	if s.tty {
		stop := s.watchSignals(src)
		defer stop()
	}
	for {
		if ctx.Err() != nil && (!s.tty || s.terminated.Load()) {
			return ctx.Err()
		}
		line, err := src.readLine(s.prompt())
		if s.terminated.Load() {
			return context.Canceled
		}
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return s.status()
		}
		if err != nil {
			return fmt.Errorf("shell: reading input: %w", err)
		}
		done, err := s.handle(base, strings.TrimSpace(line))
		if err != nil {
			return err
		}
		if done {
			return s.status()
		}
	}
}

// enter checks the starting directory start in the sandbox and makes it
// the current one. When the check fails (a backend may map working
// directories but not the paths in a command, or run no sh), the shell
// warns and goes on in the backend's default directory: only a missing
// sandbox, a refused token or an interrupt end it.
func (s *shellSession) enter(ctx context.Context, start string) error {
	dir, res, err := s.cd(ctx, start)
	var why string
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrUnauthorized)):
		return onSandbox(s.id, err)
	case err != nil:
		why = describe(ctx, err)
	case res.ExitCode != 0:
		why = fmt.Sprintf("exit %d: %s", res.ExitCode, orDash(strings.TrimSpace(res.Stderr)))
	case !path.IsAbs(dir):
		why = fmt.Sprintf("pwd printed %q", truncateText(dir, 80))
	default:
		s.workdir = dir
		return nil
	}
	s.workdir = ""
	fmt.Fprintf(s.app.stderr, "%s shell: cannot check directory %s in sandbox %q (%s); commands run in the backend's default directory\n",
		s.app.errColor.yellow("nox: warning:"), start, s.id, why)
	return nil
}

// truncateText cuts s to n bytes.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// status is the shell's result: the last command's exit code.
func (s *shellSession) status() error {
	if s.last == 0 {
		return nil
	}
	return exitStatus(clampExit(s.last))
}

func (s *shellSession) prompt() string {
	p := s.app.color
	dir := s.workdir
	if dir == "" {
		dir = "(default dir)"
	}
	return fmt.Sprintf("%s %s$ ", p.green("nox:"+s.id), p.bold(dir))
}

// shellOperators mark a line that the shell must run as a whole, even when
// it starts with cd: `cd build && make` runs make in build.
const shellOperators = ";&|<>()`\n"

// handle runs one line; it returns true when the shell should end.
func (s *shellSession) handle(ctx context.Context, line string) (bool, error) {
	a := s.app
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return false, nil
	}
	switch {
	case fields[0] == "exit" || fields[0] == "quit":
		if len(fields) > 1 {
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				fmt.Fprintf(a.stderr, "exit: %s: want a number\n", fields[1])
				return false, nil
			}
			s.last = n
		}
		return true, nil
	case fields[0] == "help" && len(fields) == 1:
		fmt.Fprintln(a.stdout, shellHelp)
		return false, nil
	case fields[0] == "pwd" && len(fields) == 1 && s.workdir != "": // else the backend's pwd says
		fmt.Fprintln(a.stdout, s.workdir)
		s.last = 0
		return false, nil
	case fields[0] == "touch" && len(fields) == 1:
		res, err := s.sb.Touch(ctx)
		if err != nil {
			return false, onSandbox(s.id, err)
		}
		fmt.Fprintf(a.stdout, "touched sandbox %q%s\n", s.id, expiresSuffix(res.ExpiresAt))
		return false, nil
	case fields[0] == "cd" && !strings.ContainsAny(line, shellOperators):
		target := sdk.DefaultWorkdir
		if rest := strings.TrimSpace(strings.TrimPrefix(line, "cd")); rest != "" {
			target = unquote(rest)
		}
		cctx, stop := s.interruptible(ctx)
		dir, res, err := s.cd(cctx, target)
		stop()
		if err != nil {
			return false, s.commandError(ctx, err)
		}
		if res.ExitCode != 0 {
			msg := strings.TrimSpace(res.Stderr)
			if msg == "" {
				msg = "cd: " + target + ": no such directory"
			}
			fmt.Fprintln(a.stderr, msg)
			s.last = res.ExitCode
			return false, nil
		}
		s.workdir, s.last = dir, 0
		return false, nil
	}
	argv, err := sdk.ShellCommand(s.shell, line)
	if err != nil {
		return false, err // the shell was checked when the session started
	}
	cctx, stop := s.interruptible(ctx)
	res, err := s.sb.ExecStream(cctx, sdk.ExecRequest{Cmd: argv, Workdir: s.workdir,
		Env: s.env, Timeout: s.timeout}, sdk.StreamOptions{Stdout: a.stdout, Stderr: a.stderr})
	stop()
	if err != nil {
		return false, s.commandError(ctx, err)
	}
	a.execNotes(res)
	s.last = res.ExitCode
	if res.ExitCode != 0 && s.tty {
		fmt.Fprintln(a.stderr, a.errColor.dim(fmt.Sprintf("[exit %d]", res.ExitCode)))
	}
	return false, nil
}

// commandError decides whether a failed call ends the shell: on a
// terminal an interrupted or failed command is reported and the shell goes
// on, except when the sandbox is gone.
func (s *shellSession) commandError(ctx context.Context, err error) error {
	if !s.tty || errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrUnauthorized) {
		return onSandbox(s.id, err)
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(s.app.stderr) // the terminal echoed ^C
	} else {
		fmt.Fprintf(s.app.stderr, "%s %s\n", s.app.errColor.red("nox:"), describe(ctx, onSandbox(s.id, err)))
	}
	s.last = 130
	return nil
}

// interruptible returns a context for one command, which a Ctrl-C on the
// terminal cancels, and the function releasing it.
func (s *shellSession) interruptible(ctx context.Context) (context.Context, func()) {
	cctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancelCmd = cancel
	s.mu.Unlock()
	return cctx, func() {
		s.mu.Lock()
		s.cancelCmd = nil
		s.mu.Unlock()
		cancel()
	}
}

// watchSignals makes SIGINT cancel the running command and SIGTERM end
// the shell, until the returned function is called.
func (s *shellSession) watchSignals(src lineSource) func() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGTERM {
					s.terminated.Store(true)
					_ = src.Close()
				}
				s.mu.Lock()
				if s.cancelCmd != nil {
					s.cancelCmd()
				}
				s.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// cd checks dir in the sandbox, relative to the current directory, and
// returns its absolute path.
func (s *shellSession) cd(ctx context.Context, dir string) (string, *sdk.ExecResult, error) {
	res, err := s.sb.Exec(ctx, sdk.ExecRequest{
		Cmd:     []string{"sh", "-c", `cd -- "$1" && pwd`, "sh", dir},
		Workdir: s.workdir, Env: s.env, Timeout: s.timeout,
	})
	if err != nil {
		return "", nil, err
	}
	return strings.TrimSpace(res.Stdout), res, nil
}

// unquote strips one pair of matching quotes around s.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// plainSource reads lines from a non-terminal input, without a prompt.
type plainSource struct{ r *bufio.Reader }

func (p *plainSource) readLine(string) (string, error) {
	line, err := p.r.ReadString('\n')
	if err == io.EOF && line != "" {
		return line, nil
	}
	return line, err
}

func (p *plainSource) Close() error { return nil }

// readlineSource reads lines on a terminal with editing and history.
type readlineSource struct{ rl *readline.Instance }

func newReadlineSource(a *app) (*readlineSource, error) {
	in, _ := a.stdin.(*os.File)
	rl, err := readline.NewEx(&readline.Config{
		Stdin:           in,
		Stdout:          a.stdout,
		Stderr:          a.stderr,
		HistoryFile:     historyFile(),
		HistoryLimit:    1000,
		InterruptPrompt: "^C",
		EOFPrompt:       "exit",
	})
	if err != nil {
		return nil, err
	}
	return &readlineSource{rl: rl}, nil
}

func (r *readlineSource) readLine(prompt string) (string, error) {
	r.rl.SetPrompt(prompt)
	return r.rl.Readline()
}

func (r *readlineSource) Close() error { return r.rl.Close() }

// historyFile is where the shell keeps its history:
// $XDG_STATE_HOME/nox/shell_history or ~/.local/state/nox/shell_history,
// or "" (history in memory only) when neither can be made.
func historyFile() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	dir = filepath.Join(dir, "nox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, "shell_history")
}
