package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// RunTool is a tool an LLM agent calls to run a shell script it wrote.
// Each conversation gets a sandbox of its own, which keeps its files
// between calls and expires after half an hour without one.
type RunTool struct {
	Client  *sdk.Client
	Timeout time.Duration // per call; the backend's default when zero
}

// ToolResult is what the model reads back, as JSON.
type ToolResult struct {
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// Call writes files into the conversation's sandbox, runs script there
// and reports how it ended. A failing script is a result, not an error.
func (t *RunTool) Call(ctx context.Context, conversation, script string, files map[string][]byte) (ToolResult, error) {
	sb := t.Client.Sandbox(conversation)
	// Create is idempotent: the first call builds the sandbox, later
	// ones find it and refresh its TTL.
	if _, err := sb.Create(ctx, sdk.CreateOptions{TTL: 30 * time.Minute, Memory: "512Mi"}); err != nil {
		return ToolResult{}, fmt.Errorf("sandbox for %s: %w", conversation, err)
	}
	if len(files) > 0 {
		if _, err := sb.UploadFiles(ctx, "/workspace", files); err != nil {
			return ToolResult{}, fmt.Errorf("uploading: %w", err)
		}
	}
	res, err := sb.Shell(ctx, script, sdk.ShellOptions{Timeout: t.Timeout})
	if err != nil {
		return ToolResult{}, fmt.Errorf("running: %w", err)
	}
	return ToolResult{ExitCode: res.ExitCode, Output: res.Stdout + res.Stderr, TimedOut: res.TimedOut}, nil
}

// Example_agentTool builds the agent tool of the README's walk-through and
// calls it the way a model would: a script with a file, then a second
// call that sees the first one's files, then one that runs too long.
func Example_agentTool() {
	// The nox local backend in this process. With a server running (nox
	// serve), use sdk.New("http://127.0.0.1:8080") instead.
	dataDir, _ := os.MkdirTemp("", "nox-agent-")
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

	tool := &RunTool{Client: client, Timeout: 2 * time.Second}
	ctx := context.Background()
	defer client.Delete(ctx, "conversation-1")
	for _, call := range []struct {
		script string
		files  map[string][]byte
	}{
		{"sh sum.sh 1 2 3", map[string][]byte{"sum.sh": []byte("echo $(($1 + $2 + $3))\n")}},
		{"ls; exit 3", nil},
		{"sleep 10", nil},
	} {
		res, err := tool.Call(ctx, "conversation-1", call.script, call.files)
		if err != nil {
			log.Fatal(err)
		}
		answer, _ := json.Marshal(res)
		fmt.Println(string(answer))
	}
	// Output:
	// {"exit_code":0,"output":"6\n"}
	// {"exit_code":3,"output":"sum.sh\n"}
	// {"exit_code":124,"output":"","timed_out":true}
}
