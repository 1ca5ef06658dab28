package egress

// SOCKS5 (RFC 1928) on the proxy's port: no authentication, CONNECT only.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// SOCKS5 protocol values.
const (
	socksVersion        = 0x05
	socksNoAuth         = 0x00
	socksNoMethod       = 0xff
	socksCmdConnect     = 0x01
	socksAtypIPv4       = 0x01
	socksAtypDomain     = 0x03
	socksAtypIPv6       = 0x04
	socksSucceeded      = 0x00
	socksGeneralFailure = 0x01
	socksNotAllowed     = 0x02
	socksHostUnreach    = 0x04
	socksRefused        = 0x05
	socksCmdUnsupported = 0x07
	socksAtypUnsupport  = 0x08
	// socksNoReply is socksRequest's code for a client that gets no reply
	// (not SOCKS5, no acceptable method, cut off).
	socksNoReply = 0xff
)

// serveSOCKS serves a SOCKS5 connection: handshake, checked dial, tunnel.
func (g *Gateway) serveSOCKS(c net.Conn, br *bufio.Reader, st *state) {
	dest, code := socksRequest(br, c)
	if code != socksSucceeded {
		if code != socksNoReply {
			socksReply(c, code)
		}
		return
	}
	c.SetReadDeadline(time.Time{})
	up, err := g.dial(g.ctx, st, dest)
	if err != nil {
		socksReply(c, socksCode(err))
		return
	}
	defer up.Close()
	if socksReply(c, socksSucceeded) != nil {
		return
	}
	splice(c, br, up)
}

// socksRequest reads a SOCKS5 greeting (answering it on w) and request,
// and returns the destination as host:port, or the reply code the
// client gets instead (socksNoReply: none).
func socksRequest(r io.Reader, w io.Writer) (dest string, code byte) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[0] != socksVersion {
		return "", socksNoReply
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return "", socksNoReply
	}
	method := byte(socksNoMethod)
	for _, m := range methods {
		if m == socksNoAuth {
			method = socksNoAuth
		}
	}
	if _, err := w.Write([]byte{socksVersion, method}); err != nil || method == socksNoMethod {
		return "", socksNoReply
	}
	var req [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(r, req[:]); err != nil || req[0] != socksVersion {
		return "", socksNoReply
	}
	if req[1] != socksCmdConnect {
		return "", socksCmdUnsupported
	}
	host, code := socksAddr(r, req[3])
	if code != socksSucceeded {
		return "", code
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return "", socksNoReply
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), socksSucceeded
}

// socksAddr reads a SOCKS5 address of type atyp.
func socksAddr(r io.Reader, atyp byte) (string, byte) {
	switch atyp {
	case socksAtypIPv4:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", socksNoReply
		}
		return netip.AddrFrom4(b).String(), socksSucceeded
	case socksAtypIPv6:
		var b [16]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", socksNoReply
		}
		return netip.AddrFrom16(b).String(), socksSucceeded
	case socksAtypDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", socksNoReply
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(r, name); err != nil {
			return "", socksNoReply
		}
		if len(name) == 0 {
			return "", socksHostUnreach
		}
		return string(name), socksSucceeded
	}
	return "", socksAtypUnsupport
}

// socksReply writes a SOCKS5 reply with code. The bound address is
// always 0.0.0.0:0: the server's side of the connection is none of the
// sandbox's business.
func socksReply(w io.Writer, code byte) error {
	_, err := w.Write([]byte{socksVersion, code, 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}

// socksCode is the reply code of a failed dial.
func socksCode(err error) byte {
	switch {
	case errors.Is(err, errNotAllowed):
		return socksNotAllowed
	case isRefused(err):
		return socksRefused
	case errors.Is(err, net.ErrClosed):
		return socksGeneralFailure
	}
	return socksHostUnreach
}
