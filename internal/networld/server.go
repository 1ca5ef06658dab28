package networld

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"time"
)

// canonical is a DNS name as the world keys it: lower-case, no trailing
// dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// serveDNS starts the world's DNS server on DNS, over UDP and TCP.
func (w *World) serveDNS() error {
	pc, err := w.ListenPacket("udp", DNS.String())
	if err != nil {
		return err
	}
	ln, err := w.Listen("tcp", DNS.String())
	if err != nil {
		return err
	}
	w.wg.Go(func() { w.serveDNSUDP(pc) })
	w.wg.Go(func() { w.serveDNSTCP(ln) })
	return nil
}

func (w *World) serveDNSUDP(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := answer(buf[:n], w.lookup); ok {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}

func (w *World) serveDNSTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		w.wg.Go(func() { w.serveDNSConn(c) })
	}
}

// serveDNSConn answers the length-prefixed queries of one TCP connection.
func (w *World) serveDNSConn(c net.Conn) {
	defer c.Close()
	var size [2]byte
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, ok := answer(msg, w.lookup)
		if !ok {
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp)))); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}
