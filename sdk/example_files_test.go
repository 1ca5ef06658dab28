package sdk_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"strings"
	"text/template"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// ExampleSandbox_ReadFile writes a script into a sandbox, runs it and
// reads its result file back: no tar, no gzip.
func ExampleSandbox_ReadFile() {
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
	sb := client.Sandbox("files-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	script := "#!/bin/sh\necho 'x,y' > out/result.csv; echo '1,2' >> out/result.csv\n"
	if _, err := sb.WriteFileWith(ctx, "job/run.sh", []byte(script), sdk.WriteOptions{Mode: 0o755, Parents: true}); err != nil {
		log.Fatal(err)
	}
	if _, err := sb.MkdirAll(ctx, "out", 0); err != nil {
		log.Fatal(err)
	}
	if _, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"./job/run.sh"}}); err != nil {
		log.Fatal(err)
	}
	out, err := sb.ReadFile(ctx, "out/result.csv")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(out))
	fi, err := sb.Stat(ctx, "job/run.sh")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fi.Path, fi.Mode)
	// Output:
	// x,y
	// 1,2
	// /workspace/job/run.sh -rwxr-xr-x
}

// ExampleSandbox_FS walks a sandbox's /workspace with io/fs and parses
// templates from it.
func ExampleSandbox_FS() {
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
	sb := client.Sandbox("fs-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)
	if _, err := sb.UploadFiles(ctx, "", map[string][]byte{
		"site/index.tmpl": []byte(`{{define "index"}}Hello, {{.}}!{{end}}`),
		"site/data.txt":   []byte("42"),
	}); err != nil {
		log.Fatal(err)
	}

	fsys := sb.FS(ctx)
	err = fs.WalkDir(fsys, "site", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(p, d.IsDir())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	tmpl, err := template.ParseFS(fsys, "site/*.tmpl")
	if err != nil {
		log.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.ExecuteTemplate(&b, "index", "sandbox"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.String())
	// Output:
	// site true
	// site/data.txt false
	// site/index.tmpl false
	// Hello, sandbox!
}

// ExampleSandbox_Watch reports a file a command creates.
func ExampleSandbox_Watch() {
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sb := client.Sandbox("watch-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(context.WithoutCancel(ctx))

	// Watch returns once the watch is in place.
	events, err := sb.Watch(ctx, "/workspace", sdk.WatchOptions{Recursive: true})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"touch", "done.flag"}}); err != nil {
		log.Fatal(err)
	}
	for ev, err := range events {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == sdk.EventCreate {
			fmt.Println(ev.Type, ev.Path)
			break // ends the watch
		}
	}
	// Output: create /workspace/done.flag
}
