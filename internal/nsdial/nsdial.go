// Package nsdial dials and listens from inside another network namespace
// than the calling process's: the socket is made there, on a thread that
// visits the namespace for that one system call, and used from anywhere.
package nsdial

import (
	"context"
	"errors"
	"net"
	"time"
)

// ErrNoNetns reports a Dialer or ListenConfig without a network namespace.
var ErrNoNetns = errors.New("no network namespace given")

// Dialer connects from inside a network namespace.
type Dialer struct {
	// Netns is the path of the namespace: /proc/PID/ns/net,
	// /proc/PID/fd/N of a namespace file descriptor, or a bind mount of
	// one such as /run/netns/NAME. Required.
	Netns string
	// Timeout bounds a dial, connection included; zero means none but
	// the context's.
	Timeout time.Duration
}

// ListenConfig listens inside a network namespace.
type ListenConfig struct {
	// Netns is the path of the namespace, as in Dialer. Required.
	Netns string
}

// Resolver returns a resolver that sends its queries to the DNS server
// at server ("host:port", an IP address) through the namespace. Like
// every pure Go resolver it answers from the host's /etc/hosts first
// when /etc/nsswitch.conf says so.
func (d *Dialer) Resolver(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
	}
}

// Ensure the shapes callers plug into net/http and net.Resolver.
var _ func(context.Context, string, string) (net.Conn, error) = (&Dialer{}).DialContext
