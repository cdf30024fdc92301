// Package freeport picks loopback TCP ports for test and dev servers that
// are started as processes of their own (nats-server, ClickHouse,
// ZooKeeper, the bench's children), which must be told their port.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the bottom of the range Pick draws from: above the usual fixed
// ports of local services (4222, 8123, 9000, ...).
const low = 20000

// Pick returns a loopback TCP port that is free now and lies below the
// kernel's ephemeral range. A port that the kernel handed out for port 0
// and that was closed again can be handed to any other listener or
// outgoing connection on the machine before the caller's process binds
// it; the kernel never hands out ports below that range, so only another
// Pick could take this one. Where the range cannot be read or leaves too
// little room, it falls back to the kernel's choice.
func Pick() (int, error) {
	lo := ephemeralLow()
	for i := 0; lo-low >= 1000 && i < 200; i++ {
		p := low + rand.IntN(lo-low)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			_ = l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of Linux's ephemeral range, or 0 where
// it cannot be read (another OS): then Pick leaves the choice to the
// kernel.
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	lo, err := parseRange(string(raw))
	if err != nil {
		return 0
	}
	return lo
}

func parseRange(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, errors.New("freeport: want two ports in ip_local_port_range")
	}
	return strconv.Atoi(f[0])
}
