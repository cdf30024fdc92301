// Package expiryindex is the layout of the projector's expiry index in its
// key-value bucket (default journey_expiry): which key holds which
// customers' inactivity expiry, and how a value encodes it. The projector
// writes and reads it; the erasure (pkg/privacy) removes customers from it.
//
// Two kinds of key live under a partition p:
//
//   - "p<p>.<customer key>" (stream.CustomerKey): one customer, value its
//     expiry in Unix nanoseconds as decimal text. The projector writes
//     these without checkpoints, one per changed customer per batch.
//   - "p<p>.s.<n>" ([ShardKey]): a shard, every customer of the partition
//     with [ShardOf] = n, one "<customer key> <unix nanoseconds>" line each
//     ([Encode]). In checkpoint mode the projector rewrites each shard a
//     checkpoint changed once, instead of one key per customer.
//
// The two kinds differ in their number of tokens, so a filter selects
// either ([CustomerFilter], [ShardFilter]). When both name a customer, the
// later write (higher stream sequence) holds.
package expiryindex

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/stream"
)

// ErrMalformed marks a shard value that is not lines of a customer key and
// a time.
var ErrMalformed = errors.New("expiryindex: malformed shard")

// PartitionPrefix is the key prefix of partition p ("p<p>.").
func PartitionPrefix(p int) string { return "p" + strconv.Itoa(p) + "." }

// CustomerKey is the key of one customer's entry in partition p.
func CustomerKey(p int, customerID string) string {
	return PartitionPrefix(p) + stream.CustomerKey(customerID)
}

// ShardKey is the key of shard n of partition p.
func ShardKey(p, n int) string { return PartitionPrefix(p) + "s." + strconv.Itoa(n) }

// CustomerFilter selects the one-customer keys of partition p.
func CustomerFilter(p int) string { return PartitionPrefix(p) + "*" }

// ShardFilter selects the shards of partition p.
func ShardFilter(p int) string { return PartitionPrefix(p) + "s.*" }

// AllShards selects the shards of every partition.
const AllShards = "*.s.*"

// ShardOf is the shard of a customer among shards: the id's 64-bit FNV-1a
// through MurmurHash3's finaliser. Not the 32-bit FNV-1a alone: the
// stream's partition() mapping is that hash of the customer key modulo
// the partitions, so it would put a partition's customers in a few of its
// shards; and FNV alone spreads ids that differ in their last byte badly.
func ShardOf(customerID string, shards int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(customerID))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return int(x % uint64(max(shards, 1)))
}

// Key is a parsed index key.
type Key struct {
	Partition int
	// Shard is true for a shard key; then CustomerID is empty.
	Shard      bool
	CustomerID string
}

// ParseKey reads a key of either kind; ok is false for anything else.
func ParseKey(key string) (k Key, ok bool) {
	part, token, found := strings.Cut(key, ".")
	if !found || len(part) < 2 || part[0] != 'p' {
		return Key{}, false
	}
	p, err := strconv.Atoi(part[1:])
	if err != nil || p < 0 {
		return Key{}, false
	}
	if n, isShard := strings.CutPrefix(token, "s."); isShard {
		if n, err := strconv.Atoi(n); err != nil || n < 0 {
			return Key{}, false
		}
		return Key{Partition: p, Shard: true}, true
	}
	id, valid := stream.CustomerID(token)
	if !valid {
		return Key{}, false
	}
	return Key{Partition: p, CustomerID: id}, true
}

// ParseCustomerValue reads a one-customer value.
func ParseCustomerValue(v []byte) (time.Time, error) {
	ns, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiryindex: expiry %q: %w", v, err)
	}
	return time.Unix(0, ns).UTC(), nil
}

// CustomerValue is a one-customer value.
func CustomerValue(at time.Time) []byte { return strconv.AppendInt(nil, at.UnixNano(), 10) }

// Encode is a shard's value: one line per customer, sorted by customer
// key so that the same entries give the same bytes.
func Encode(entries map[string]time.Time) []byte {
	keys := make([]string, 0, len(entries))
	byKey := make(map[string]time.Time, len(entries))
	for id, at := range entries {
		k := stream.CustomerKey(id)
		keys = append(keys, k)
		byKey[k] = at
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.Grow(len(keys) * 32)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(' ')
		b.Write(strconv.AppendInt(nil, byKey[k].UnixNano(), 10))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Decode calls fn for every entry of a shard's value. It stops at the
// first malformed line with an error wrapping [ErrMalformed].
func Decode(v []byte, fn func(customerID string, at time.Time)) error {
	for line := range bytes.Lines(v) {
		line = bytes.TrimSuffix(line, []byte{'\n'})
		k, ns, ok := bytes.Cut(line, []byte{' '})
		id, valid := stream.CustomerID(string(k))
		at, err := strconv.ParseInt(string(ns), 10, 64)
		if !ok || !valid || err != nil {
			return fmt.Errorf("%w: line %q", ErrMalformed, line)
		}
		fn(id, time.Unix(0, at).UTC())
	}
	return nil
}

// Without is a shard's value without the given customers, and how many
// of them it held.
func Without(v []byte, customerIDs []string) ([]byte, int, error) {
	drop := make(map[string]bool, len(customerIDs))
	for _, id := range customerIDs {
		drop[id] = true
	}
	kept := make(map[string]time.Time)
	removed := 0
	err := Decode(v, func(id string, at time.Time) {
		if drop[id] {
			removed++
			return
		}
		kept[id] = at
	})
	if err != nil || removed == 0 {
		return v, 0, err
	}
	return Encode(kept), removed, nil
}
