package warehouse

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Addrs parses Addr: one or more host:port of the native protocol,
// comma-separated, spaces around each allowed ("ch1:9000, ch2:9000").
// clickhouse-go dials them in this order (ConnOpenInOrder) and moves on to
// the next when one does not answer within DialTimeout, so list the
// preferred server first. An empty entry, a missing or non-numeric port
// is an error wrapping [ErrConfig] that names the entry.
func Addrs(addr string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(addr, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_ADDR %q has an empty address", ErrConfig, addr)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_ADDR: %q is not host:port: %w", ErrConfig, a, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
			return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_ADDR: %q needs a host and a port 1..65535", ErrConfig, a)
		}
		out = append(out, a)
	}
	return out, nil
}
