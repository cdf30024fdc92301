// Package privacy wires the erasure state machine (pkg/erasure) to
// journey's stores: the NATS streams and key-value buckets and the
// ClickHouse tables. [StreamInventory] and [Classify] are the one list of
// every store journey creates, with what the erasure does to each
// ([Uncovered] applies them to what exists); a test fails when a stream,
// bucket or table exists that they do not cover. [Service] runs erasures
// (journeyctl erase, the API) and [Service.Sweep] purges late arrivals.
package privacy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Names are the configurable store names (the projector's buckets and
// outbox; the rest are fixed).
type Names struct {
	// StateBucket, IndexBucket and OutboxStream are the projector's
	// (JOURNEY_PROJECTOR_BUCKET, _INDEX_BUCKET, _OUTBOX_STREAM; defaults
	// journey_customers, journey_expiry, PROJECTOR_OUTBOX).
	StateBucket, IndexBucket, OutboxStream string
	// AccountsBucket is JOURNEY_PROJECTOR_ACCOUNTS_BUCKET (default
	// journey_accounts).
	AccountsBucket string
}

func (n Names) withDefaults() Names {
	if n.StateBucket == "" {
		n.StateBucket = "journey_customers"
	}
	if n.IndexBucket == "" {
		n.IndexBucket = "journey_expiry"
	}
	if n.OutboxStream == "" {
		n.OutboxStream = "PROJECTOR_OUTBOX"
	}
	if n.AccountsBucket == "" {
		n.AccountsBucket = "journey_accounts"
	}
	return n
}

// Fixed store names outside the configurable ones.
const (
	// JournalBucket records erasures (ids only while one runs).
	JournalBucket = "journey_erasures"
	// ReceiptStream keeps the io.klantreis.privacy.erased.v1 receipts.
	ReceiptStream  = "PRIVACY"
	receiptSubject = "privacy.erased."
	// writerFenceBucket is services/writer.FenceBucket (pkg cannot
	// import it; TestInventoryCoversEveryStore fails if they disagree).
	writerFenceBucket = "JOURNEY_WRITER_FENCE"
)

// ErrUncovered marks a store the inventory does not cover.
var ErrUncovered = errors.New("privacy: a store is not covered by the erasure")

// StreamInventory is every NATS stream journey creates (a key-value bucket
// is its stream KV_<bucket>): the ones the erasure erases, in order, and
// the ones it keeps, with why. Add a stream here when you add it to
// journey; TestInventoryCoversEveryStore fails until you do.
func StreamInventory(n Names) (erased []string, kept map[string]string) {
	n = n.withDefaults()
	erased = []string{
		stream.TouchpointStream,
		stream.DerivedStream,
		stream.DeadLetterStream,
		stream.ReplayStream,
		"KV_" + n.AccountsBucket,
		n.OutboxStream,
		n.replayOutbox(),
		"KV_" + n.StateBucket,
		"KV_" + n.IndexBucket,
		"KV_" + opsjob.Bucket,
		"KV_" + opsBucket,
	}
	kept = map[string]string{
		"KV_" + suppression.Bucket: "the suppression list: sha256 of the id and a time, kept so that the customer stays erased",
		"KV_" + JournalBucket:      "the erasure journal: ids only while an erasure runs, then hashes and counts",
		ReceiptStream:              "erasure receipts: hashes and counts, no personal data",
		"KV_" + writerFenceBucket:  "writer turn-taking: table names and writer ids, no personal data",
		audit.Stream:               "the ops audit events (journeyctl, the API): actors and selections by sequence or erasure id, no customer id",
	}
	return erased, kept
}

// Uncovered returns, of the streams and tables that exist, the ones the
// inventory neither erases nor keeps (empty when everything is covered).
func Uncovered(streams []string, tables []Table, n Names) []string {
	erased, kept := StreamInventory(n)
	var out []string
	for _, s := range streams {
		if _, shadow := n.shadowBucket(s); !slices.Contains(erased, s) && kept[s] == "" && !shadow {
			out = append(out, "stream "+s)
		}
	}
	for _, t := range tables {
		if _, err := Classify(t); err != nil {
			out = append(out, "table "+t.Name)
		}
	}
	return out
}

// Stores is the erasure's store list, in order: the streams (so nothing
// new reaches ClickHouse from them), the outbox (its rows reach ClickHouse
// before the tables are erased), the buckets, then every table of the
// database as it is now (listed live, so a rebuild's shadow table or a
// table added later is erased too). It fails, naming it, on a table the
// inventory does not cover.
func Stores(ctx context.Context, js jetstream.JetStream, db *warehouse.DB, n Names) ([]erasure.Store, error) {
	n = n.withDefaults()
	out := []erasure.Store{
		subjectStore{js: js, stream: stream.TouchpointStream, name: "stream " + stream.TouchpointStream, filter: stream.CustomerFilter, inflow: true},
		subjectStore{js: js, stream: stream.DerivedStream, name: "stream " + stream.DerivedStream, filter: derivedFilter},
		deadLetterStore{js: js, name: "stream " + stream.DeadLetterStream},
		jobStore{js: js},
		replayStore{js: js},
		// Copies of touchpoints a replay has not delivered yet.
		subjectStore{js: js, stream: stream.ReplayStream, name: "stream " + stream.ReplayStream, filter: stream.ReplayCustomerFilter},
		// Before the outbox: the rows the projector writes for the accounts
		// the customers leave go through it.
		accountStore{js: js, bucket: n.AccountsBucket},
		outboxStore{js: js, stream: n.OutboxStream, name: "stream " + n.OutboxStream},
		outboxStore{js: js, stream: n.replayOutbox(), name: "stream " + n.replayOutbox()},
		subjectStore{js: js, stream: "KV_" + n.StateBucket, name: "stream KV_" + n.StateBucket, filter: kvFilter(n.StateBucket, "")},
		subjectStore{js: js, stream: "KV_" + n.IndexBucket, name: "stream KV_" + n.IndexBucket, filter: kvFilter(n.IndexBucket, "*.")},
		shardStore{js: js, bucket: n.IndexBucket},
	}
	// The state and index buckets of re-derived rules versions
	// (journey_customers__v2, …), listed live like the tables.
	names := js.StreamNames(ctx)
	for s := range names.Name() {
		if prefix, ok := n.shadowBucket(s); ok {
			bucket := strings.TrimPrefix(s, "KV_")
			out = append(out, subjectStore{js: js, stream: s, name: "stream " + s, filter: kvFilter(bucket, prefix)})
			if prefix != "" { // an index bucket
				out = append(out, shardStore{js: js, bucket: bucket})
			}
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("privacy: list streams: %w", err)
	}
	ts, err := tableStores(ctx, db)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		out = append(out, t)
	}
	return out, nil
}

// replayOutbox is the outbox of a projector with JOURNEY_PROJECTOR_INPUT=replay
// (services/projector names it so).
func (n Names) replayOutbox() string { return n.OutboxStream + "_REPLAY" }

// derivedFilter selects every derived event of one customer
// (customer.<kind>.<customer key>).
func derivedFilter(customerID string) string {
	return "customer.*." + stream.CustomerKey(customerID)
}

// kvFilter selects every revision of a customer's key in a bucket; the
// expiry index keys are "p<partition>.<customer key>" (prefix "*.").
func kvFilter(bucket, prefix string) func(string) string {
	return func(customerID string) string {
		return "$KV." + bucket + "." + prefix + stream.CustomerKey(customerID)
	}
}

// opsBucket is pkg/ruleset's bucket of ops state (ruleset.Bucket).
const opsBucket = "JOURNEY_OPS"

// shadowBucket reports whether stream s is the state or index bucket of a
// re-derived rules version (KV_<bucket>__v<N>, see ruleset.Version.Bucket)
// and the key prefix of its customer keys there.
func (n Names) shadowBucket(s string) (keyPrefix string, ok bool) {
	n = n.withDefaults()
	switch {
	case strings.HasPrefix(s, "KV_"+n.StateBucket+"__v"):
		return "", true
	case strings.HasPrefix(s, "KV_"+n.IndexBucket+"__v"):
		return "*.", true
	}
	return "", false
}
