package suppression

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// mention matches an id where a JSON record can hold one: a whole JSON
// string, after "=" (--customer=ID) or in a comma-separated list
// (--customer a,b).
func mention(id string) *regexp.Regexp {
	esc, _ := json.Marshal(id)
	body := regexp.QuoteMeta(string(esc[1 : len(esc)-1]))
	return regexp.MustCompile(`(["=,])` + body + `([",])`)
}

// Redact replaces every mention of the ids in a JSON document with
// "erased:" and the first 8 hex digits of the id's Hash, for records that
// stay after an erasure (an ops job, a replay's selection); an id that
// merely contains another is left alone.
func Redact(raw []byte, ids []string) []byte {
	for _, id := range ids {
		re := mention(id)
		repl := []byte("${1}erased:" + Hash(id)[:8] + "${2}")
		// Again until stable: adjacent mentions ("c1,c1") share a delimiter.
		for next := re.ReplaceAll(raw, repl); !bytes.Equal(next, raw); next = re.ReplaceAll(raw, repl) {
			raw = next
		}
	}
	return raw
}

// RedactKV applies [Redact] to every value of bucket whose key matches
// one of filters (every key when none is given), each by compare-and-set,
// and returns how many keys it changed; with dryRun it only counts them.
// A bucket that keeps history has its older revisions of a changed key
// purged, so that no revision names the ids. A value changed meanwhile is
// read and redacted again; a writer that held the old revision loses its
// next compare-and-set, which stops a job or a replay that still names an
// erased customer.
func RedactKV(ctx context.Context, js jetstream.JetStream, bucket string, ids []string, dryRun bool, filters ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0, fmt.Errorf("suppression: bucket %s: %w", bucket, err)
	}
	st, err := js.Stream(ctx, stream.KVStream(bucket))
	if err != nil {
		return 0, fmt.Errorf("suppression: bucket %s: %w", bucket, err)
	}
	lister, err := kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return 0, fmt.Errorf("suppression: list %s: %w", bucket, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a key written during the listing may come twice
	keys = slices.Compact(keys)
	keepsHistory := st.CachedInfo().Config.MaxMsgsPerSubject != 1
	changed := 0
	for _, k := range keys {
		n, err := redactKey(ctx, kv, k, ids, dryRun)
		if err == nil && keepsHistory {
			n, err = redactHistory(ctx, kv, st, k, ids, dryRun, n)
		}
		changed += n
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// redactKey redacts one key's value, again when it changed under us.
func redactKey(ctx context.Context, kv jetstream.KeyValue, k string, ids []string, dryRun bool) (int, error) {
	for attempt := 0; ; attempt++ {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("suppression: read %s %s: %w", kv.Bucket(), k, err)
		}
		raw := Redact(e.Value(), ids)
		if bytes.Equal(raw, e.Value()) {
			return 0, nil
		}
		if dryRun {
			return 1, nil
		}
		_, err = kv.Update(ctx, k, raw, e.Revision())
		if err == nil {
			return 1, nil
		}
		if !stream.IsWrongLastSeq(err) || attempt > 20 {
			return 0, fmt.Errorf("suppression: redact %s %s: %w", kv.Bucket(), k, err)
		}
	}
}

// redactHistory purges a key's older revisions when one of them names the
// ids (or the newest did: changed is 1), keeping the newest, now redacted.
func redactHistory(ctx context.Context, kv jetstream.KeyValue, st jetstream.Stream, k string, ids []string, dryRun bool, changed int) (int, error) {
	if changed == 0 {
		hist, err := kv.History(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("suppression: history %s %s: %w", kv.Bucket(), k, err)
		}
		for _, e := range hist {
			if !bytes.Equal(Redact(e.Value(), ids), e.Value()) {
				changed = 1
				break
			}
		}
	}
	if changed == 0 || dryRun {
		return changed, nil
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(stream.KVKeyPrefix(kv.Bucket())+k), jetstream.WithPurgeKeep(1)); err != nil {
		return changed, fmt.Errorf("suppression: purge the older revisions of %s %s: %w", kv.Bucket(), k, err)
	}
	return changed, nil
}
