package main

import (
	"net"
	"strconv"
	"strings"
)

// forwardSpec is one [LOCAL_ADDR:]LOCAL_PORT:PORT argument of nox
// port-forward.
type forwardSpec struct {
	// listen is the local address to listen on, host:port (port 0: any
	// free port).
	listen string
	// port is the port inside the sandbox.
	port int
}

// parseForwardSpec reads PORT, LOCAL_PORT:PORT, :PORT (any free local
// port) or LOCAL_ADDR:LOCAL_PORT:PORT (LOCAL_ADDR may be an IPv6 address
// in brackets, [::1]:8080:80); the default address is 127.0.0.1.
func parseForwardSpec(s string) (forwardSpec, error) {
	rest, remote := "", s
	if i := strings.LastIndex(s, ":"); i >= 0 {
		rest, remote = s[:i], s[i+1:]
	}
	port, err := parsePort(remote)
	if err != nil {
		return forwardSpec{}, usagef("port-forward: %q: the sandbox's port: %v", s, err)
	}
	host, local := "127.0.0.1", remote
	if strings.Contains(s, ":") {
		local = rest
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			host, local = rest[:i], rest[i+1:]
			if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
				host = host[1 : len(host)-1]
			} else if strings.Contains(host, ":") {
				return forwardSpec{}, usagef("port-forward: %q: too many colons (an IPv6 local address goes in brackets: [::1]:8080:80)", s)
			}
			if host == "" {
				return forwardSpec{}, usagef("port-forward: %q: empty local address", s)
			}
		}
		if local == "" {
			local = "0"
		}
	}
	if local != "0" {
		if _, err := parsePort(local); err != nil {
			return forwardSpec{}, usagef("port-forward: %q: the local port: %v", s, err)
		}
	}
	return forwardSpec{listen: net.JoinHostPort(host, local), port: port}, nil
}

// portError is the reason a port argument is invalid.
type portError string

func (e portError) Error() string { return string(e) }

// parsePort reads a port number, 1 to 65535.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, portError("\"" + s + "\" is not a number")
	}
	if n < 1 || n > 65535 {
		return 0, portError(s + " is not between 1 and 65535")
	}
	return n, nil
}
