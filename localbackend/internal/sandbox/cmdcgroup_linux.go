package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cmdCgroup is the cgroup of one command; empty ones are reused.
type cmdCgroup struct {
	dir    string
	task   *os.File // its task file, opened by us, written to by the init
	taskFD int      // task's descriptor, sent with every exec request
	// count is pids.current (v1) or cgroup.events (v2), re-read to see
	// whether the cgroup is empty; nil: read cgroup.procs instead.
	count *os.File
	v2    bool
}

// close closes the cgroup's files (not the cgroup).
func (cc *cmdCgroup) close() {
	cc.task.Close()
	if cc.count != nil {
		cc.count.Close()
	}
}

// empty reports whether no process is left in the cgroup. A process
// counts until it is reaped.
func (cc *cmdCgroup) empty() bool {
	if cc.count != nil {
		var b [256]byte
		if n, _ := cc.count.ReadAt(b[:], 0); n > 0 {
			s := string(b[:n])
			if cc.v2 {
				return strings.Contains(s, "populated 0")
			}
			return strings.TrimSpace(s) == "0"
		}
	}
	pids, err := readPids(cc.dir)
	return err == nil && len(pids) == 0
}

// maxFreeCgroups bounds the empty command cgroups kept for reuse.
const maxFreeCgroups = 8

func (s *Sandbox) takeCgroup(id uint64) (*cmdCgroup, error) {
	s.mu.Lock()
	if n := len(s.free); n > 0 {
		cc := s.free[n-1]
		s.free = s.free[:n-1]
		s.mu.Unlock()
		return cc, nil
	}
	s.mu.Unlock()
	d, f, err := s.cg.newCommand(id)
	if err != nil {
		return nil, err
	}
	cc := &cmdCgroup{dir: d, task: f, taskFD: int(f.Fd()), v2: s.cg.v2}
	name := "pids.current"
	if cc.v2 {
		name = "cgroup.events"
	}
	// Not through os.Open: the poller would be woken by cgroup.events
	// at every start and end of a command, for nothing.
	if fd, err := unix.Open(filepath.Join(d, name), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		cc.count = os.NewFile(uintptr(fd), name)
	}
	return cc, nil
}

// releaseCgroup keeps a command's cgroup for reuse, or removes it, once
// its processes are gone. An empty cgroup (the command left nothing
// behind) is released at once, without a goroutine; else background
// processes keep it until they exit or the sandbox stops.
func (s *Sandbox) releaseCgroup(cc *cmdCgroup) {
	if cc == nil {
		s.cleanup.Done()
		return
	}
	if cc.empty() {
		s.recycleCgroup(cc)
		s.cleanup.Done()
		return
	}
	go func() {
		defer s.cleanup.Done()
		for {
			select {
			case <-s.stopped:
				cc.close()
				return // Stop removes the whole tree
			case <-time.After(time.Second):
			}
			if cc.empty() {
				s.recycleCgroup(cc)
				return
			}
		}
	}()
}

// recycleCgroup keeps an empty command cgroup for reuse, or removes it.
// Nothing can enter an empty command cgroup but the init's forking
// thread, on our request: reuse is safe.
func (s *Sandbox) recycleCgroup(cc *cmdCgroup) {
	s.mu.Lock()
	if !s.stopping && len(s.free) < maxFreeCgroups {
		s.free = append(s.free, cc)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	cc.close()
	_ = unix.Rmdir(cc.dir)
}
