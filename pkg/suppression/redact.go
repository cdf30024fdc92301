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
// one of filters (every key when none is given): see [RewriteKV].
func RedactKV(ctx context.Context, js jetstream.JetStream, bucket string, ids []string, dryRun bool, filters ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return RewriteKV(ctx, js, bucket, dryRun, func(v []byte) ([]byte, error) { return Redact(v, ids), nil }, filters...)
}

// RewriteKV replaces every value of bucket whose key matches one of
// filters (every key when none is given) with rewrite's result, each by
// compare-and-set, and returns how many keys it changed; with dryRun it
// only counts them. A bucket that keeps history has the older revisions
// of a key purged when rewrite would change one of them, so that no
// revision keeps what it removed. A value changed meanwhile is read and
// rewritten again; a writer that held the old revision loses its next
// compare-and-set, which stops a job or a replay that still names an
// erased customer.
func RewriteKV(ctx context.Context, js jetstream.JetStream, bucket string, dryRun bool, rewrite func([]byte) ([]byte, error), filters ...string) (int, error) {
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
	rw := rewriter{kv: kv, st: st, rewrite: rewrite, dryRun: dryRun, history: st.CachedInfo().Config.MaxMsgsPerSubject != 1}
	changed := 0
	for _, k := range keys {
		n, err := rw.key(ctx, k)
		if err == nil && rw.history {
			n, err = rw.older(ctx, k, n)
		}
		changed += n
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// rewriter is one RewriteKV over a bucket.
type rewriter struct {
	kv      jetstream.KeyValue
	st      jetstream.Stream
	rewrite func([]byte) ([]byte, error)
	dryRun  bool
	history bool
}

// changes reports whether rewrite changes v, and to what.
func (rw rewriter) changes(v []byte) ([]byte, bool, error) {
	out, err := rw.rewrite(v)
	if err != nil {
		return nil, false, err
	}
	return out, !bytes.Equal(out, v), nil
}

// key rewrites one key's value, again when it changed under us.
func (rw rewriter) key(ctx context.Context, k string) (int, error) {
	for attempt := 0; ; attempt++ {
		e, err := rw.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("suppression: read %s %s: %w", rw.kv.Bucket(), k, err)
		}
		out, changed, err := rw.changes(e.Value())
		if err != nil {
			return 0, fmt.Errorf("suppression: %s %s: %w", rw.kv.Bucket(), k, err)
		}
		if !changed {
			return 0, nil
		}
		if rw.dryRun {
			return 1, nil
		}
		_, err = rw.kv.Update(ctx, k, out, e.Revision())
		if err == nil {
			return 1, nil
		}
		if !stream.IsWrongLastSeq(err) || attempt > 20 {
			return 0, fmt.Errorf("suppression: rewrite %s %s: %w", rw.kv.Bucket(), k, err)
		}
	}
}

// older purges a key's older revisions when rewrite would change one of
// them (or changed the newest: changed is 1), keeping the newest.
func (rw rewriter) older(ctx context.Context, k string, changed int) (int, error) {
	if changed == 0 {
		hist, err := rw.kv.History(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("suppression: history %s %s: %w", rw.kv.Bucket(), k, err)
		}
		for _, e := range hist {
			if _, c, err := rw.changes(e.Value()); err != nil || c {
				changed = 1 // an unreadable old revision goes too
				break
			}
		}
	}
	if changed == 0 || rw.dryRun {
		return changed, nil
	}
	if err := rw.st.Purge(ctx, jetstream.WithPurgeSubject(stream.KVKeyPrefix(rw.kv.Bucket())+k), jetstream.WithPurgeKeep(1)); err != nil {
		return changed, fmt.Errorf("suppression: purge the older revisions of %s %s: %w", rw.kv.Bucket(), k, err)
	}
	return changed, nil
}
