package sdk_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

func TestMain(m *testing.M) {
	localbackend.MaybeRunInit() // a re-executed sandbox init never returns
	flag.Parse()
	// The examples start the local backend as a program would (isolation
	// auto). Where it cannot isolate sandboxes they cannot run as shown:
	// only the tests run, unless NOX_REQUIRE_ISOLATION=1 makes that fail.
	if why := localBackendUnavailable(); why != "" && os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
		fmt.Fprintf(os.Stderr, "sdk: skipping the examples: the local backend does not start here: %s\n", why)
		if flag.Lookup("test.run").Value.String() == "" {
			if err := flag.Set("test.run", "^Test"); err != nil {
				log.Fatal(err)
			}
		}
	}
	os.Exit(m.Run())
}

// localBackendUnavailable returns why the local backend does not start
// here with its default isolation, or "".
func localBackendUnavailable() string {
	dir, err := os.MkdirTemp("", "nox-probe-")
	if err != nil {
		return err.Error()
	}
	defer os.RemoveAll(dir)
	b, err := localbackend.New(localbackend.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err.Error()
	}
	b.Close()
	return ""
}

// Example shows the main workflow: create a sandbox, wait until it is
// ready, run a command and delete the sandbox.
func Example() {
	// The nox local backend in this process, reached through its handler
	// (no socket). For a running server: sdk.New("http://127.0.0.1:8080").
	dataDir, err := os.MkdirTemp("", "nox-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	sb := client.Sandbox("example")
	if _, err := sb.Create(ctx, sdk.CreateOptions{TTL: 10 * time.Minute}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(context.WithoutCancel(ctx))
	if err := sb.WaitReady(ctx, sdk.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"echo", "hello", "world"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d: %s", res.ExitCode, res.Stdout)
	// Output: exit 0: hello world
}

func ExampleClient_Create() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	created, err := client.Create(ctx, "create-demo", sdk.CreateOptions{TTL: 5 * time.Minute, Memory: "512Mi"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Delete(ctx, "create-demo")
	fmt.Println(created.PodName != "", time.Until(created.ExpiresAt) > 4*time.Minute)
	// Output: true true
}

func ExampleClient_Exec() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.Create(ctx, "exec-demo", sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer client.Delete(ctx, "exec-demo")

	// A non-zero exit code is a result, not an error.
	res, err := client.Exec(ctx, "exec-demo", sdk.ExecRequest{
		Cmd:     []string{"sh", "-c", "echo $GREETING; exit 3"},
		Env:     map[string]string{"GREETING": "hi"},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d, stdout %q\n", res.ExitCode, res.Stdout)
	// Output: exit 3, stdout "hi\n"
}

func ExampleClient_Shell() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("shell-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	res, err := sb.Shell(ctx, "mkdir -p data && cd data && echo one > f && cat f | tr a-z A-Z", sdk.ShellOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	// Output: ONE
}

func ExampleClient_ExecStream() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("stream-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	// Output is written to os.Stdout as the command produces it; backends
	// without the exec.stream extension get a buffered exec instead.
	res, err := sb.ExecStream(ctx,
		sdk.ExecRequest{Cmd: []string{"sh", "-c", "for i in 1 2 3; do echo line $i; done"}},
		sdk.StreamOptions{Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit", res.ExitCode)
	// Output:
	// line 1
	// line 2
	// line 3
	// exit 0
}

func ExampleClient_UploadFiles() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("upload-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	_, err = sb.UploadFiles(ctx, "/workspace", map[string][]byte{
		"main.py":     []byte("print('hello from nox')\n"),
		"data/in.txt": []byte("42\n"),
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"cat", "data/in.txt"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	// Output: 42
}

func ExampleClient_UploadDir() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("uploaddir-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	local, _ := os.MkdirTemp("", "src-")
	defer os.RemoveAll(local)
	os.MkdirAll(filepath.Join(local, "pkg"), 0o755)
	os.WriteFile(filepath.Join(local, "pkg", "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)

	// The directory is streamed: memory use does not grow with its size.
	if _, err := sb.UploadDir(ctx, "/workspace/src", local); err != nil {
		log.Fatal(err)
	}
	res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"./pkg/run.sh"}, Workdir: "/workspace/src"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	// Output: ran
}

func ExampleClient_DownloadTo() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("download-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)
	if _, err := sb.Shell(ctx, "mkdir -p out && echo result > out/r.txt", sdk.ShellOptions{}); err != nil {
		log.Fatal(err)
	}

	local, _ := os.MkdirTemp("", "out-")
	defer os.RemoveAll(local)
	// The archive is extracted safely: nothing is written outside local.
	if err := sb.DownloadTo(ctx, "/workspace/out", local); err != nil {
		log.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(local, "r.txt"))
	fmt.Print(string(data))
	// Output: result
}

func ExampleClient_Download() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb := client.Sandbox("download-stream-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)
	sb.UploadFiles(ctx, "", map[string][]byte{"report.txt": []byte("done")})

	// Download streams the gzip tar; pass it on, or extract it.
	rc, err := sb.Download(ctx, "/workspace/report.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n > 0)
	// Output: true
}

func ExampleClient_Delete() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.Create(ctx, "delete-demo", sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Delete(ctx, "delete-demo"))

	// Act on the error's category, never on its message.
	err = client.Delete(ctx, "delete-demo")
	fmt.Println(errors.Is(err, sdk.ErrNotFound))
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Operation)
	}
	// Output:
	// <nil>
	// true
	// 404 deleteSandbox
}

func ExampleClient_List() {
	// A local backend in this process; see the package example.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"list-b", "list-a"} {
		if _, err := client.Create(ctx, id, sdk.CreateOptions{}); err != nil {
			log.Fatal(err)
		}
		defer client.Delete(ctx, id)
	}
	if ok, _ := client.Supports(ctx, sdk.ExtSandboxesList); !ok {
		return // a plain v1 backend cannot list
	}
	for s, err := range client.List(ctx, sdk.ListOptions{PageSize: 1}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.SessionID, s.TTL)
	}
	// Output:
	// list-a 15m0s
	// list-b 15m0s
}

func ExampleExtractTarGz() {
	src, _ := os.MkdirTemp("", "src-")
	dst, _ := os.MkdirTemp("", "dst-")
	defer os.RemoveAll(src)
	defer os.RemoveAll(dst)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644)

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(sdk.WriteTarGz(pw, src)) }()
	if err := sdk.ExtractTarGz(pr, dst); err != nil {
		log.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dst, "a.txt"))
	fmt.Println(string(data))
	// Output: a
}

func ExampleWithHandler() {
	// Any http.Handler serving the API under the base URL's path works;
	// here the local backend, in process, without a socket. Responses
	// stream as the handler writes them.
	dataDir, _ := os.MkdirTemp("", "nox-example-")
	defer os.RemoveAll(dataDir)
	backend, err := localbackend.New(localbackend.Config{DataDir: dataDir})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	client, err := sdk.New("http://in-process.invalid", sdk.WithHandler(backend.Handler()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Health(context.Background()))
	// Output: <nil>
}

func ExampleAPIError() {
	err := fmt.Errorf("deploying: %w", &sdk.APIError{StatusCode: 503, Message: "busy", Operation: "execInSandbox", RequestID: "r-1"})
	fmt.Println(errors.Is(err, sdk.ErrUnavailable))
	fmt.Println(err)
	// Output:
	// true
	// deploying: nox: execInSandbox: 503 Service Unavailable: busy (request id r-1)
}

// ExampleExtractTarGzWith extracts an archive within caps: a gzip bomb
// (a few kilobytes that unpack to 64 MiB) is refused with ErrTooLarge, and
// the files extracted before it are removed again.
func ExampleExtractTarGzWith() {
	dir, _ := os.MkdirTemp("", "nox-extract-")
	defer os.RemoveAll(dir)

	var archive bytes.Buffer
	gz := gzip.NewWriter(&archive)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "notes.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "zeros.bin", Mode: 0o644, Size: 64 << 20, Typeflag: tar.TypeReg})
	tw.Write(make([]byte, 64<<20))
	tw.Close()
	gz.Close()
	fmt.Println("archive under 1 MiB:", archive.Len() < 1<<20)

	err := sdk.ExtractTarGzWith(bytes.NewReader(archive.Bytes()), dir, sdk.ExtractOptions{MaxBytes: 16 << 20})
	fmt.Println("too large:", errors.Is(err, sdk.ErrTooLarge))
	left, _ := os.ReadDir(dir)
	fmt.Println("files left:", len(left))

	// sdk.Unlimited lifts the cap.
	err = sdk.ExtractTarGzWith(bytes.NewReader(archive.Bytes()), dir, sdk.ExtractOptions{MaxBytes: sdk.Unlimited})
	fmt.Println("unlimited:", err)
	// Output:
	// archive under 1 MiB: true
	// too large: true
	// files left: 0
	// unlimited: <nil>
}
