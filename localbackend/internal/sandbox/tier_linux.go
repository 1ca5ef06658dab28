package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// pickTier runs the probes for want (TierAuto: the strongest tier that
// works, never TierNoneUnsafe) and returns the tier with the notes on what
// it lacks.
func (m *Manager) pickTier(want Tier) (Tier, []string, error) {
	var notes []string
	tryUserNS := func() error { return m.probe(true) }
	tryRootNS := func() error {
		if !m.root {
			return errors.New("the server is not root")
		}
		return m.probe(false)
	}
	tryLandlock := func() error {
		if abi := landlockABI(); abi < 1 {
			return errors.New("landlock is not available")
		}
		return nil
	}
	landlockNotes := []string{
		"no namespaces: /workspace is the host directory (ExecSpec.Dir under /workspace or /tmp is rewritten; argv and env are not)",
		"no pid namespace: commands can see host processes in /proc",
		"no network namespace: Landlock denies TCP bind/connect only; UDP and other protocols are reachable",
		"a timed-out command's double-forked descendants are found by a /proc walk only when no cgroup is available",
	}
	switch want {
	case TierAuto, "":
		err := tryUserNS()
		if err == nil {
			return TierNamespaces, nil, nil
		}
		notes = append(notes, "user namespaces unusable: "+err.Error())
		if err := tryRootNS(); err == nil {
			return TierRootNamespaces, append(notes, "no user namespace: the init runs as host root until it switches to the sandbox uid; inside, the sandbox user has its host uid"), nil
		}
		if err := tryLandlock(); err == nil {
			return TierLandlock, append(notes, landlockNotes...), nil
		}
		return "", nil, fmt.Errorf("%w: no namespaces and no Landlock (TierNoneUnsafe must be asked for explicitly)", ErrUnavailable)
	case TierNamespaces:
		if err := tryUserNS(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, nil, nil
	case TierRootNamespaces:
		if err := tryRootNS(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, []string{"no user namespace: the init runs as host root until it switches to the sandbox uid; inside, the sandbox user has its host uid"}, nil
	case TierLandlock:
		if err := tryLandlock(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, landlockNotes, nil
	case TierNoneUnsafe:
		return want, []string{
			"NOT ISOLATED: commands run on the host with the server's view of the filesystem and network",
			"only a process group, a session and rlimits apply (and a per-sandbox uid and cgroup when the server is root)",
			"/workspace is the host directory (ExecSpec.Dir under /workspace or /tmp is rewritten; argv and env are not)",
		}, nil
	}
	return "", nil, fmt.Errorf("%w: unknown tier %q", ErrUnavailable, want)
}

// probe re-executes this binary in new namespaces where it must mount.
func (m *Manager) probe(userns bool) error {
	cmd := exec.Command("/proc/self/exe", probeArg)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	if userns {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.start(ctx, cmd); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("probe: mount in new namespaces failed: %w", err)
	}
	return nil
}
