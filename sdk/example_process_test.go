package sdk_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// processBackend runs the nox local backend in this process, in a
// temporary data directory, and returns a sandbox of it, the handler
// serving it and the function that releases them. With a server running
// (nox serve), use sdk.New("http://127.0.0.1:8080") instead.
func processBackend(ctx context.Context, id string) (*sdk.Sandbox, http.Handler, func()) {
	dataDir, err := os.MkdirTemp("", "nox-processes-")
	if err != nil {
		log.Fatal(err)
	}
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	handler := backend.Handler()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(handler))
	if err != nil {
		log.Fatal(err)
	}
	sb := client.Sandbox(id)
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	return sb, handler, func() {
		sb.Delete(context.WithoutCancel(ctx))
		backend.Close()
		os.RemoveAll(dataDir)
	}
}

// ExampleSandbox_Start starts a process that outlives the call, follows
// its output as it is printed and waits for its end.
func ExampleSandbox_Start() {
	ctx := context.Background()
	sb, _, release := processBackend(ctx, "start-demo")
	defer release()

	p, err := sb.Start(ctx, []string{"sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.01; done; exit 4"},
		sdk.StartOptions{Tag: "ticker"})
	if err != nil {
		log.Fatal(err)
	}
	// From offset 0: everything, including what was printed before the
	// loop started. A dropped connection is resumed where it stopped.
	for chunk, err := range p.Output(ctx, 0) {
		if err != nil {
			log.Fatal(err)
		}
		// Chunks follow the process's writes, and the backend may join
		// writes that came close together: print line by line.
		for _, line := range strings.SplitAfter(string(chunk.Data), "\n") {
			if line != "" {
				fmt.Printf("%s: %s", chunk.Stream, line)
			}
		}
	}
	rec, err := p.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit code", rec.ExitCode)
	// Output:
	// stdout: tick 1
	// stdout: tick 2
	// stdout: tick 3
	// exit code 4
}

// ExampleProcess_Stdin answers a process's questions through its
// standard input, one streamed request for all the writes.
func ExampleProcess_Stdin() {
	ctx := context.Background()
	sb, _, release := processBackend(ctx, "stdin-demo")
	defer release()

	p, err := sb.Start(ctx, []string{"sh", "-c", "read name; read color; echo $name likes $color"},
		sdk.StartOptions{Stdin: true})
	if err != nil {
		log.Fatal(err)
	}
	stdin := p.Stdin(ctx)
	fmt.Fprintln(stdin, "nox")
	fmt.Fprintln(stdin, "green")
	if err := stdin.Close(); err != nil { // standard input reaches its end
		log.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	for chunk, err := range p.Output(ctx, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(string(chunk.Data))
	}
	// Output:
	// nox likes green
}

// ExampleProcess_Signal asks a process to stop with SIGTERM, which it
// handles, once it said it was ready.
func ExampleProcess_Signal() {
	ctx := context.Background()
	sb, _, release := processBackend(ctx, "signal-demo")
	defer release()

	script := `trap 'echo stopping; exit 0' TERM; echo ready; sleep 60 & wait`
	p, err := sb.Start(ctx, []string{"sh", "-c", script}, sdk.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	var printed strings.Builder
	for chunk, err := range p.Output(ctx, 0) {
		if err != nil {
			log.Fatal(err)
		}
		printed.Write(chunk.Data)
		if strings.Contains(printed.String(), "ready\n") {
			break
		}
	}
	if err := p.Signal(ctx, sdk.SIGTERM); err != nil {
		log.Fatal(err)
	}
	rec, err := p.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for chunk, err := range p.Output(ctx, int64(printed.Len())) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(string(chunk.Data))
	}
	fmt.Println("exit code", rec.ExitCode)
	// Output:
	// stopping
	// exit code 0
}

// ExampleProcess_Kill kills a process and everything it started.
func ExampleProcess_Kill() {
	ctx := context.Background()
	sb, _, release := processBackend(ctx, "kill-demo")
	defer release()

	p, err := sb.Start(ctx, []string{"sh", "-c", "sleep 60 & sleep 60"}, sdk.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := p.Kill(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.State, rec.ExitCode, rec.Signal)
	// Output:
	// exited 137 KILL
}

// ExampleSandbox_Process finds a process again from a program that did
// not start it (the processes outlive their clients), by its tag, and
// waits for it.
func ExampleSandbox_Process() {
	ctx := context.Background()
	sb, handler, release := processBackend(ctx, "reattach-demo")
	defer release()

	// One program starts a job and forgets it.
	if _, err := sb.Start(ctx, []string{"sh", "-c", "sleep 0.1; echo built"}, sdk.StartOptions{Tag: "build"}); err != nil {
		log.Fatal(err)
	}

	// Another one (here a second Client) lists the sandbox's builds and
	// reattaches to the first.
	other, err := sdk.New("http://nox.invalid", sdk.WithHandler(handler))
	if err != nil {
		log.Fatal(err)
	}
	builds, err := other.Sandbox("reattach-demo").Processes(ctx, sdk.ProcessListOptions{Tag: "build"})
	if err != nil {
		log.Fatal(err)
	}
	p, err := other.Sandbox("reattach-demo").Process(ctx, builds[0].ID)
	if err != nil {
		log.Fatal(err)
	}
	rec, err := p.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	out, err := io.ReadAll(outputReader(ctx, p))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s exited %d: %s", strings.Join(rec.Cmd[:1], " "), rec.ExitCode, out)
	// Output:
	// sh exited 0: built
}

// outputReader returns a process's output as a stream of bytes.
func outputReader(ctx context.Context, p *sdk.Process) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for chunk, err := range p.Output(ctx, 0) {
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(chunk.Data); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

// ExampleSandbox_Terminal runs a shell on a terminal, as ssh does, reads
// the terminal's size, resizes it, and gets the shell's exit code.
func ExampleSandbox_Terminal() {
	ctx := context.Background()
	sb, _, release := processBackend(ctx, "terminal-demo")
	defer release()

	term, err := sb.Terminal(ctx, sdk.TerminalOptions{Cmd: []string{"sh"}, Size: sdk.TermSize{Rows: 24, Cols: 80}})
	if err != nil {
		log.Fatal(err)
	}
	defer term.Close()
	size := regexp.MustCompile(`(\d+) (\d+)\r\n`)
	// stty size prints "rows cols"; the terminal also echoes what is typed.
	fmt.Fprint(term, "stty size\n")
	fmt.Println(readMatch(term, size))
	if err := term.Resize(40, 120); err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(term, "stty size; exit 3\n")
	fmt.Println(readMatch(term, size))
	// The exit message comes after the output: read it to its end.
	if _, err := io.Copy(io.Discard, term); err != nil {
		log.Fatal(err)
	}
	rec, err := term.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit code", rec.ExitCode)
	// Output:
	// 24 80
	// 40 120
	// exit code 3
}

// readMatch reads r until what it read matches re, and returns the match.
func readMatch(r io.Reader, re *regexp.Regexp) string {
	var got []byte
	buf := make([]byte, 1024)
	for {
		if m := re.FindSubmatch(got); m != nil {
			return string(m[1]) + " " + string(m[2])
		}
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			log.Fatalf("read %q: %v", got, err)
		}
	}
}
