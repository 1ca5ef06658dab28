package sdk_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// These examples need a backend with the ports extension, such as nox
// serve on a host whose sandboxes have a network namespace: they are
// compiled, not run.

// ExampleSandbox_PortClient starts a web server inside the sandbox and
// sends it a request through the backend's proxy.
func ExampleSandbox_PortClient() {
	ctx := context.Background()
	client, err := sdk.New("http://127.0.0.1:8080", sdk.WithToken("my-token"))
	if err != nil {
		log.Fatal(err)
	}
	sb := client.Sandbox("web-demo")
	if _, err := sb.Start(ctx, []string{"python3", "-m", "http.server", "8000"}, sdk.StartOptions{}); err != nil {
		log.Fatal(err)
	}
	hc := sb.PortClient(8000)
	// A host-less URL is a path of the server in the sandbox.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/index.html", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := hc.Do(req) // until the server listens, a 502
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}

// ExampleSandbox_Dial talks a line protocol to a TCP server inside the
// sandbox, over a tunnel: the sandbox needs no network access.
func ExampleSandbox_Dial() {
	ctx := context.Background()
	client, err := sdk.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	sb := client.Sandbox("redis-demo")
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second) // the dial only
	defer cancel()
	conn, err := sb.Dial(dialCtx, 6379)
	if err != nil {
		log.Fatal(err) // errors.Is(err, sdk.ErrUnavailable): nothing listens yet
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		log.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(line) // +PONG
}

// ExampleSandbox_Preview makes a URL of a port to open in a browser,
// which sends no token.
func ExampleSandbox_Preview() {
	ctx := context.Background()
	client, err := sdk.New("http://127.0.0.1:8080", sdk.WithToken("my-token"))
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.Sandbox("web-demo").Preview(ctx, 8000, 15*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("open", p.URL, "before", p.ExpiresAt.Format(time.Kitchen))
}
