package membackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/driver"
)

// basePath is every command's PATH unless the request sets one.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// process is a running command; its process group is killed on timeout,
// on delete and when it ends (taking its background children with it).
type process struct {
	pgid int
}

func (p *process) killGroup() {
	if p.pgid <= 0 {
		return
	}
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	// A member forking while the group is killed can leave a child the
	// signal missed: kill again until the group is empty (for a second
	// at most, so a reused group id is never hit).
	go func(pgid int) {
		for range 20 {
			time.Sleep(50 * time.Millisecond)
			if syscall.Kill(-pgid, syscall.SIGKILL) != nil {
				return
			}
		}
	}(p.pgid)
}

// execution is a command admitted by StartExec.
type execution struct {
	b       *Backend
	s       *sandbox
	req     driver.ExecRequest
	release func()
	once    sync.Once
}

// StartExec admits a command: the sandbox exists, a slot is free and the
// working directory is a directory.
func (b *Backend) StartExec(ctx context.Context, id string, req driver.ExecRequest) (driver.Execution, error) {
	s, err := b.lookup(id, true)
	if err != nil {
		return nil, err
	}
	if err := s.checkWorkdir(req.Workdir); err != nil {
		return nil, err
	}
	wait := time.NewTimer(b.cfg.ExecQueueWait)
	defer wait.Stop()
	select {
	case b.slots <- struct{}{}:
	case <-wait.C:
		return nil, fmt.Errorf("%d commands are running, the backend's limit: %w", cap(b.slots), driver.ErrBusy)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.Lock()
	if s.deleted {
		b.mu.Unlock()
		<-b.slots
		return nil, fmt.Errorf("sandbox %q: %w", id, driver.ErrNotFound)
	}
	s.execs++
	b.mu.Unlock()
	e := &execution{b: b, s: s, req: req}
	e.release = func() {
		b.mu.Lock()
		s.execs--
		s.lastActive = b.cfg.Now()
		b.mu.Unlock()
		<-b.slots
	}
	return e, nil
}

// checkWorkdir checks that the working directory workdir is a directory.
func (s *sandbox) checkWorkdir(workdir string) error {
	host, err := s.hostPath("workdir", workdir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
		return fmt.Errorf("workdir: %q does not exist or is not a directory: %w", workdir, driver.ErrInvalidArgument)
	}
	return nil
}

// Abort releases the command's slot.
func (e *execution) Abort() { e.once.Do(e.release) }

// Wait runs the command to its end.
func (e *execution) Wait(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
	defer e.Abort()
	s, lim := e.s, e.b.cfg.Limits.MaxOutputBytes
	if e.b.cfg.Faults.NoOutputCap {
		lim = 1 << 40
	}
	stdout := &capture{limit: lim, rewrite: s.fromHost, stream: driver.Stdout, out: out}
	stderr := &capture{limit: lim, rewrite: s.fromHost, stream: driver.Stderr, out: out}
	cmd := s.command(e.req.Argv, e.req.Env, e.req.Workdir)
	if e.req.Stdin != nil {
		cmd.Stdin = bytes.NewReader(e.req.Stdin)
	}
	// Pipes of our own, not exec's copying goroutines: Wait returns when
	// the command exits, the group is killed, and only then is the output
	// drained to its end, however long a loaded machine takes to read it.
	outR, outW, err := os.Pipe()
	if err != nil {
		return driver.ExecResult{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return driver.ExecResult{}, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	start := time.Now()
	err = cmd.Start()
	closeAll(outW, errW)
	if err != nil {
		closeAll(outR, errR)
		res := startFailure(err, e.req.Argv[0], time.Since(start))
		// Through the capture, so that a stream shows the reason too.
		_, _ = stderr.Write([]byte(res.Stderr))
		res.Stderr, _ = stderr.result()
		return res, nil
	}
	var drains sync.WaitGroup
	for _, d := range []struct {
		f *os.File
		c *capture
	}{{outR, stdout}, {errR, stderr}} {
		drains.Go(func() { _, _ = io.Copy(d.c, d.f) })
	}
	p := &process{pgid: cmd.Process.Pid}
	e.b.mu.Lock()
	s.running[p] = true
	e.b.mu.Unlock()
	var timedOut atomic.Bool
	timer := time.AfterFunc(e.req.Timeout, func() {
		timedOut.Store(true)
		if e.b.cfg.Faults.TimeoutKillsOnlyCommand {
			_ = cmd.Process.Kill()
			return
		}
		p.killGroup()
	})
	stop := context.AfterFunc(ctx, p.killGroup)
	err = cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The stdin copy was cut (a process outside the command kept its
		// pipe): the command's own status stands.
		err = nil
		if !cmd.ProcessState.Success() {
			err = &exec.ExitError{ProcessState: cmd.ProcessState}
		}
	}
	timer.Stop()
	stop()
	if !e.b.cfg.Faults.TimeoutKillsOnlyCommand {
		p.killGroup()
	}
	endOutput(&drains, outR, errR)
	e.b.mu.Lock()
	delete(s.running, p)
	e.b.mu.Unlock()
	if ctx.Err() != nil {
		return driver.ExecResult{}, ctx.Err()
	}
	res := driver.ExecResult{Duration: time.Since(start), TimedOut: timedOut.Load()}
	res.ExitCode = exitCode(err, res.TimedOut)
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	return res, nil
}

// command builds the host command of argv in workdir with the request's
// env, sandbox paths rewritten to the host; its output goes nowhere yet.
func (s *sandbox) command(argv []string, env map[string]string, workdir string) *exec.Cmd {
	host := make([]string, len(argv))
	for i, a := range argv {
		host[i] = s.toHost.Replace(a)
	}
	vars := map[string]string{"PATH": basePath, "HOME": s.workspace, "LANG": "C.UTF-8", "TMPDIR": s.tmp}
	for k, v := range env {
		vars[k] = s.toHost.Replace(v)
	}
	cmd := exec.Command(host[0], host[1:]...)
	if !strings.Contains(argv[0], "/") {
		// Look the program up in the command's PATH, not the server's.
		cmd = exec.Command(lookPath(host[0], vars["PATH"]), host[1:]...)
		cmd.Args[0] = host[0]
	}
	cmd.Dir = s.toHost.Replace(workdir)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second // bounds the copy of a request's stdin
	return cmd
}

// outputGrace is how long the output of a command that ended is read
// once its process group is dead: only a process that left the group
// (setsid) can keep a pipe open that long.
const outputGrace = 2 * time.Second

// endOutput waits for drains, the readers of files, for outputGrace at
// most; then it cuts the reads and closes files.
func endOutput(drains *sync.WaitGroup, files ...*os.File) {
	if !waitTimeout(drains, outputGrace) {
		for _, f := range files {
			_ = f.SetReadDeadline(time.Now())
		}
	}
	drains.Wait()
	closeAll(files...)
}

// lookPath finds name in the directories of pathList, or returns name.
func lookPath(name, pathList string) string {
	for _, dir := range strings.Split(pathList, ":") {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// startFailure is the result of a command that could not start: 127 when
// the program does not exist, 126 when it cannot be executed.
func startFailure(err error, program string, d time.Duration) driver.ExecResult {
	code, why := 127, "command not found"
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
		code, why = 126, "permission denied"
	}
	return driver.ExecResult{ExitCode: code, Stderr: program + ": " + why + "\n", Duration: d}
}

// exitCode maps how a command ended to its exit code.
func exitCode(err error, timedOut bool) int {
	if timedOut {
		return 124
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 0
}

// capture keeps the first limit bytes of a stream and forwards them, host
// paths rewritten and split on UTF-8 character boundaries, to out.
type capture struct {
	limit   int64
	rewrite *strings.Replacer
	stream  driver.Stream
	out     func(driver.Stream, string)

	mu        sync.Mutex
	buf       []byte
	sent      int // bytes of buf already forwarded
	truncated bool
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - int64(len(c.buf))
	chunk := p
	if int64(len(chunk)) > room {
		chunk, c.truncated = chunk[:room], true
	}
	c.buf = append(c.buf, chunk...)
	if c.out != nil {
		end := completeUTF8(c.buf, c.sent)
		if end > c.sent {
			c.out(c.stream, c.rewrite.Replace(strings.ToValidUTF8(string(c.buf[c.sent:end]), "\uFFFD")))
			c.sent = end
		}
	}
	return len(p), nil
}

// completeUTF8 returns the end of the longest prefix of b that does not
// end inside a UTF-8 character, at least from.
func completeUTF8(b []byte, from int) int {
	end := len(b)
	for i := 1; i <= utf8.UTFMax && end-i >= from; i++ {
		if utf8.RuneStart(b[end-i]) {
			if !utf8.FullRune(b[end-i:]) {
				return end - i
			}
			break
		}
	}
	return end
}

// result returns the captured output as text.
func (c *capture) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out != nil && c.sent < len(c.buf) {
		c.out(c.stream, c.rewrite.Replace(strings.ToValidUTF8(string(c.buf[c.sent:]), "\uFFFD")))
		c.sent = len(c.buf)
	}
	return c.rewrite.Replace(strings.ToValidUTF8(string(c.buf), "\uFFFD")), c.truncated
}
