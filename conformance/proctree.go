package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// procTree is a process tree a check starts as one process: a shell with
// two sleeping children and a shell child with a sleeping child of its
// own. Each records its pid in a file of the workspace, so that the
// check can tell which still run without listing every process of the
// sandbox (on a shared host, a scan of /proc is slow).
type procTree struct {
	// n is the sleeps' duration, unique to the tree: a reused pid does
	// not run it.
	n int
	// pids is the file of pids, relative to /workspace.
	pids string
}

// treeSize is the number of processes of a procTree.
const treeSize = 5

func newProcTree() procTree {
	n := 10000 + rand.IntN(80000)
	return procTree{n: n, pids: fmt.Sprintf("tree-%d.pids", n)}
}

// script is the tree's shell script.
func (t procTree) script() string {
	return fmt.Sprintf(`echo $$ >> %[2]s; sleep %[1]d & echo $! >> %[2]s; sh -c 'sleep %[1]d & echo $! >> %[2]s; echo i; wait' & echo $! >> %[2]s; sleep %[1]d & echo $! >> %[2]s; echo o; wait`,
		t.n, t.pids)
}

// state returns how many processes of the tree recorded their pid and
// the pids of those that still run (a zombie does not).
func (t procTree) state(ctx context.Context, env *Env, id string) (int, []string, error) {
	script := fmt.Sprintf(`n=0; alive=; for p in $(cat %[2]s 2>/dev/null); do n=$((n+1)); `+
		`if [ -r /proc/$p/cmdline ]; then case "$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)" in *"sleep %[1]d"*) alive="$alive $p";; esac; `+
		`elif kill -0 "$p" 2>/dev/null; then alive="$alive $p"; fi; done; echo "$n$alive"`, t.n, t.pids)
	out, err := env.Sh(ctx, id, script)
	if err != nil {
		return 0, nil, fmt.Errorf("look for the tree's processes: %w", err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, nil, fmt.Errorf("look for the tree's processes: output %q", out)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, nil, fmt.Errorf("look for the tree's processes: output %q", out)
	}
	return n, f[1:], nil
}

// awaitStarted waits up to limit until every process of the tree
// (process pid) runs: the shells print a line each once they recorded
// their children.
func (t procTree) awaitStarted(ctx context.Context, env *Env, id, pid string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	if _, err := env.awaitOutput(ctx, id, pid, 4, limit); err != nil {
		return fmt.Errorf("%w: the process tree did not start: %w", ErrSuite, err)
	}
	for {
		n, alive, err := t.state(ctx, env, id)
		if err != nil || (n == treeSize && len(alive) == treeSize) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the process tree did not start within %s (%d pids recorded, %d running)", ErrSuite, limit, n, len(alive))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// awaitDead waits up to limit until no process of the tree runs, and
// returns those still running then.
func (t procTree) awaitDead(ctx context.Context, env *Env, id string, limit time.Duration) ([]string, error) {
	deadline := time.Now().Add(limit)
	for {
		_, alive, err := t.state(ctx, env, id)
		if err != nil || len(alive) == 0 || time.Now().After(deadline) {
			return alive, err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return alive, err
		}
	}
}
