package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// How long the CLI waits for the local daemon: to answer once started
// (it usually does within a second; past daemonStartWait nox says it is
// still waiting, and gives up at daemonStartLimit while the daemon's
// process still runs), for the start lock another nox holds while it
// starts one, and for an old daemon to exit (its requests in flight get
// shutdownGrace).
const (
	daemonStartWait  = 5 * time.Second
	daemonStartLimit = 30 * time.Second
	daemonLockWait   = daemonStartLimit + 5*time.Second
	daemonStopWait   = shutdownGrace + 5*time.Second
	// daemonLogMax is the size past which a starting daemon's log is
	// rotated.
	daemonLogMax = 8 << 20
	// daemonProbeTimeout bounds one GET /daemon.
	daemonProbeTimeout = 2 * time.Second
)

// errNoDaemon is returned by probeDaemon when no daemon answers on the socket.
var errNoDaemon = errors.New("no daemon answers")

// unixHTTPClient returns an HTTP client whose every connection goes to the
// unix socket at path, whatever the URL's host.
func unixHTTPClient(path string) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// probeDaemon asks the daemon on hc's socket for its status; errNoDaemon
// when nothing listens there. touch counts the call as a request for the
// daemon's idle exit.
func probeDaemon(ctx context.Context, hc *http.Client, touch bool) (daemonStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, daemonProbeTimeout)
	defer cancel()
	u := localBaseURL + daemonPath
	if touch {
		u += "?touch=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return daemonStatus{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if isNoListener(err) {
			return daemonStatus{}, errNoDaemon
		}
		return daemonStatus{}, fmt.Errorf("asking the local daemon for its status: %w", err)
	}
	defer resp.Body.Close()
	var st daemonStatus
	if resp.StatusCode != http.StatusOK || resp.Header.Get(versionHeader) == "" {
		return st, fmt.Errorf("asking the local daemon for its status: %s from something that is not a nox daemon", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("asking the local daemon for its status: %w", err)
	}
	return st, nil
}

// isNoListener reports whether err says that nothing listens on the socket
// (no socket file, or a dead daemon's). A reset is a daemon killed just
// now: its listener accepted the connection into its backlog as it died.
func isNoListener(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// daemonFits reports whether the daemon st can serve this CLI, and why not.
func daemonFits(st daemonStatus, g globals) (bool, string) {
	if st.Version != noxVersion() {
		return false, fmt.Sprintf("it runs version %s, this nox is %s", st.Version, noxVersion())
	}
	if st.Isolation != g.isolation {
		return false, fmt.Sprintf("it runs with --isolation %s, this command asks for %s", st.Isolation, g.isolation)
	}
	return true, ""
}

// ensureDaemon returns a client of the data dir's daemon and its status,
// starting the daemon when none runs, and replacing one of another version
// or isolation tier.
func (a *app) ensureDaemon(ctx context.Context, g globals) (*http.Client, daemonStatus, error) {
	files, err := daemonFilesOf(g.dataDir)
	if err != nil {
		return nil, daemonStatus{}, err
	}
	hc := unixHTTPClient(files.socket)
	st, err := probeDaemon(ctx, hc, true)
	if err == nil {
		if ok, _ := daemonFits(st, g); ok {
			return hc, st, nil
		}
	} else if !errors.Is(err, errNoDaemon) {
		return nil, st, err
	}
	// Slow path, under the start lock: two nox commands starting at once
	// make one daemon.
	if err := os.MkdirAll(files.dir, 0o700); err != nil {
		return nil, st, fmt.Errorf("local daemon: %w", err)
	}
	if err := os.Chmod(files.dir, 0o700); err != nil {
		return nil, st, fmt.Errorf("local daemon: %w", err)
	}
	unlock, err := lockWait(ctx, files.lock, daemonLockWait)
	if err != nil {
		return nil, st, fmt.Errorf("local daemon: %w", err)
	}
	defer unlock()
	st, err = probeDaemon(ctx, hc, true)
	switch {
	case err == nil:
		ok, why := daemonFits(st, g)
		if ok {
			return hc, st, nil
		}
		if g.verbose {
			fmt.Fprintf(a.stderr, "nox: replacing the local daemon (pid %d): %s\n", st.PID, why)
		}
		if err := stopDaemon(ctx, hc, st); err != nil {
			return nil, st, fmt.Errorf("replacing the local daemon (%s): %w", why, err)
		}
	case !errors.Is(err, errNoDaemon):
		return nil, st, err
	}
	st, err = a.startDaemon(ctx, g, files, hc)
	if err != nil {
		return nil, st, err
	}
	return hc, st, nil
}

// lockWait takes an exclusive lock on the file at path, waiting at most
// wait, and returns its release.
func lockWait(ctx context.Context, path string, wait time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("start lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startDaemon starts nox serve --socket detached (a session of its own,
// output to the daemon's log) and waits until it answers.
func (a *app) startDaemon(ctx context.Context, g globals, files daemonFiles, hc *http.Client) (daemonStatus, error) {
	exe, err := os.Executable()
	if err != nil {
		return daemonStatus{}, fmt.Errorf("starting the local daemon: %w", err)
	}
	// The log keeps one daemon.log.1 of older runs.
	if fi, err := os.Stat(files.log); err == nil && fi.Size() > daemonLogMax {
		_ = os.Rename(files.log, files.log+".1")
	}
	logf, err := os.OpenFile(files.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return daemonStatus{}, fmt.Errorf("starting the local daemon: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	// Argument zero is "nox": a binary that embeds nox picks its command by it.
	cmd := &exec.Cmd{Path: exe, Args: []string{"nox", "--data-dir", filepath.Dir(files.dir), "--isolation", g.isolation,
		"serve", "--socket", files.socket}, Env: daemonEnv(os.Environ()), Stdout: logf, Stderr: logf, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return daemonStatus{}, fmt.Errorf("starting the local daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reaps it if it exits before this nox
	if g.verbose {
		fmt.Fprintf(a.stderr, "nox: started the local daemon (pid %d, log %s)\n", cmd.Process.Pid, files.log)
	}
	start := time.Now()
	noted := false
	for {
		st, err := probeDaemon(ctx, hc, true)
		if err == nil {
			return st, nil
		}
		select {
		case <-exited:
			return st, daemonFailed(g.dataDir, files, logStart, cmd.ProcessState.String())
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if waited := time.Since(start); waited > daemonStartLimit {
			return st, fmt.Errorf("the local daemon (pid %d) did not answer within %s: see %s", cmd.Process.Pid, daemonStartLimit, files.log)
		} else if waited > daemonStartWait && !noted && (g.verbose || isTerminal(a.stderr)) {
			noted = true
			fmt.Fprintf(a.stderr, "nox: waiting for the local daemon (pid %d) to start; its log: %s\n", cmd.Process.Pid, files.log)
		}
	}
}

// daemonEnv is the environment of a daemon started by nox: the CLI's,
// without the variables that would make it require a token (the socket's
// permissions guard it) or point it elsewhere.
func daemonEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"NOX_TOKEN", "NOXRUNNER_TOKEN", "NOXRUNNER_BASE_URL", "NOX_LOCAL", "NOX_LOCAL_INPROCESS"}, k)
	})
}

// daemonFailed explains why a daemon exited before answering, from what
// it wrote to its log.
func daemonFailed(dataDir string, files daemonFiles, from int64, state string) error {
	b, _ := os.ReadFile(files.log)
	if from >= 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	tail := strings.Join(lines, "\n")
	if bytes.Contains(b, []byte("is in use by another nox")) {
		return &restated{err: errors.New(tail), msg: fmt.Sprintf("data dir %s is in use by another nox process "+
			"(a nox serve, or nox --local-inprocess still running): talk to that nox serve with --base-url, or pick another --data-dir", dataDir)}
	}
	return fmt.Errorf("the local daemon exited (%s) before answering; its log (%s) ends:\n%s", state, files.log, tail)
}

// stopDaemon asks the daemon st to exit and waits until it has (so that
// the data dir is free for another).
func stopDaemon(ctx context.Context, hc *http.Client, st daemonStatus) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, localBaseURL+daemonPath, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if isNoListener(err) {
			return nil
		}
		return fmt.Errorf("asking the local daemon to exit: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("asking the local daemon to exit: %s", resp.Status)
	}
	hc.CloseIdleConnections()
	deadline := time.Now().Add(daemonStopWait)
	for processAlive(st.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the local daemon (pid %d) did not exit within %s", st.PID, daemonStopWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// processAlive reports whether a process pid exists (and is no zombie).
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
