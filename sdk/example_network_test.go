package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/sdk"
	"github.com/noxrunner/nox/server"
)

// ExampleSandbox_SetNetwork lets a sandbox reach a package index, and
// nothing else, to install a package. It needs a backend with the
// network.egress extension, such as nox serve on Linux: it is compiled,
// not run.
func ExampleSandbox_SetNetwork() {
	ctx := context.Background()
	client, err := sdk.New("http://127.0.0.1:8080", sdk.WithToken("my-token"))
	if err != nil {
		log.Fatal(err)
	}
	sb := client.Sandbox("pip-demo")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	p, err := sb.SetNetwork(ctx, sdk.NetworkPolicy{
		Egress: sdk.EgressAllowlist,
		Allow:  []string{"pypi.org", "*.pythonhosted.org"},
	})
	if err != nil {
		log.Fatal(err) // errors.Is(err, sdk.ErrInvalidArgument): the message names the entry
	}
	fmt.Println(p.Egress, p.Allow)
	res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"pip", "install", "requests"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ExitCode)
	// Close it again once the dependencies are in.
	if _, err := sb.SetNetwork(ctx, sdk.NetworkPolicy{Egress: sdk.EgressNone}); err != nil {
		log.Fatal(err)
	}
}

// ExampleCreateOptions_network asks for a policy at creation. A backend
// without the network.egress extension (here the reference in-memory
// backend) would ignore it and leave the sandbox without the access asked
// for, so the SDK refuses before sending anything; Network and SetNetwork
// refuse likewise.
func ExampleCreateOptions_network() {
	ctx := context.Background()
	b, err := membackend.New(membackend.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	h, err := server.New(b, server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	client, err := sdk.New("http://nox.invalid", sdk.WithHandler(h))
	if err != nil {
		log.Fatal(err)
	}
	ok, err := client.Supports(ctx, sdk.ExtNetworkEgress)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("network.egress:", ok)
	_, err = client.Create(ctx, "demo", sdk.CreateOptions{
		Network: &sdk.NetworkPolicy{Egress: sdk.EgressAllowlist, Allow: []string{"pypi.org"}},
	})
	fmt.Println("create with a policy:", errors.Is(err, sdk.ErrUnsupported))
	_, err = client.Create(ctx, "demo", sdk.CreateOptions{})
	fmt.Println("create without:", err)
	_, err = client.Sandbox("demo").Network(ctx)
	fmt.Println("Network:", errors.Is(err, sdk.ErrUnsupported))
	// Output:
	// network.egress: false
	// create with a policy: true
	// create without: <nil>
	// Network: true
}
