package privacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// accountStore erases customers from the account projection's bucket
// (JOURNEY_PROJECTOR_ACCOUNTS_BUCKET). Their contact directory entries
// name every account their events named; each of those forgets the
// customers' contacts, answers, complaints and quotes
// (account.State.Forget) by compare-and-set and is marked Reproject. The
// store then asks the projector to write those accounts' rows again (an
// "r." key each) and waits until every record's mark is cleared, so that
// the outbox step after it carries rows without the customers to
// ClickHouse, where the table step deletes the older rows that name them
// (account_state by its view). The contact entries go last, so that an
// erasure resumed after a crash still finds the accounts. A projector that
// is down, or one without the account projection, makes Erase time out;
// the erasure fails and resumes at this step when run again.
//
// Count counts the customers' contact entries and the accounts that still
// hold one of the customers.
type accountStore struct {
	js      jetstream.JetStream
	bucket  string
	timeout time.Duration // for the projector's refresh; default 2m
	poll    time.Duration // default 100ms
}

func (s accountStore) Name() string { return "stream KV_" + s.bucket }

// open returns the bucket, or nil when it was never created.
func (s accountStore) open(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, s.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", s.bucket, err)
	}
	return kv, nil
}

// contacts returns the customers' contact entry keys and the accounts
// those entries name, sorted.
func (s accountStore) contacts(ctx context.Context, kv jetstream.KeyValue, customers []string) (keys, accounts []string, err error) {
	want := make(map[string]bool, len(customers))
	for _, c := range customers {
		want[stream.AccountContactPrefix(c)] = true
	}
	lister, err := kv.ListKeysFiltered(ctx, stream.AccountContactsFilter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list contacts of %s: %w", s.bucket, err)
	}
	for k := range lister.Keys() {
		if owner, ok := stream.AccountContactOwner(k); ok && want[owner] {
			keys = append(keys, k)
		}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("contact %s: %w", k, err)
		}
		var c account.Contact
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return nil, nil, fmt.Errorf("decode contact %s: %w", k, err)
		}
		for _, a := range c.AccountIDs() {
			if !seen[a] {
				seen[a] = true
				accounts = append(accounts, a)
			}
		}
	}
	slices.Sort(keys)
	slices.Sort(accounts)
	return keys, accounts, nil
}

// record reads an account's record; nil when there is none.
func record(ctx context.Context, kv jetstream.KeyValue, id string) (*projection.AccountRecord, uint64, error) {
	e, err := kv.Get(ctx, stream.AccountKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("account %q: %w", id, err)
	}
	var rec projection.AccountRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.State == nil {
		return nil, 0, fmt.Errorf("decode account %q: %v", id, err)
	}
	return &rec, e.Revision(), nil
}

// holds reports whether st keeps anything of the customers.
func holds(st *account.State, customers map[string]bool) bool {
	for _, m := range st.Members {
		if customers[m.CustomerID] {
			return true
		}
	}
	for _, q := range st.Quotes {
		if customers[q.CustomerID] {
			return true
		}
	}
	return false
}

func set(customers []string) map[string]bool {
	m := make(map[string]bool, len(customers))
	for _, c := range customers {
		m[c] = true
	}
	return m
}

func (s accountStore) Count(ctx context.Context, customers []string) (uint64, error) {
	kv, err := s.open(ctx)
	if kv == nil || err != nil {
		return 0, err
	}
	keys, accounts, err := s.contacts(ctx, kv, customers)
	if err != nil {
		return 0, err
	}
	n := uint64(len(keys))
	want := set(customers)
	for _, id := range accounts {
		rec, _, err := record(ctx, kv, id)
		if err != nil {
			return 0, err
		}
		if rec != nil && holds(rec.State, want) {
			n++
		}
	}
	return n, nil
}

func (s accountStore) Erase(ctx context.Context, customers []string) error {
	kv, err := s.open(ctx)
	if kv == nil || err != nil {
		return err
	}
	keys, accounts, err := s.contacts(ctx, kv, customers)
	if err != nil {
		return err
	}
	var refresh []string
	for _, id := range accounts {
		marked, err := forget(ctx, kv, id, customers)
		if err != nil {
			return err
		}
		if marked {
			refresh = append(refresh, id)
		}
	}
	if err := s.refresh(ctx, kv, refresh); err != nil {
		return err
	}
	st, err := s.js.Stream(ctx, "KV_"+s.bucket)
	if err != nil {
		return err
	}
	for _, k := range keys {
		subj := stream.KVKeyPrefix(s.bucket) + k
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return fmt.Errorf("purge %s: %w", subj, err)
		}
	}
	return nil
}

// forget removes the customers from one account by compare-and-set and
// reports whether the record is marked for the projector to write again
// (now, or by an earlier attempt that did not see it through).
func forget(ctx context.Context, kv jetstream.KeyValue, id string, customers []string) (bool, error) {
	for attempt := 0; attempt < 16; attempt++ {
		rec, rev, err := record(ctx, kv, id)
		if err != nil || rec == nil {
			return false, err
		}
		gone := false
		for _, c := range customers {
			gone = rec.State.Forget(c) || gone
		}
		if !gone {
			return rec.Reproject, nil
		}
		rec.Reproject = true
		b, err := json.Marshal(rec)
		if err != nil {
			return false, fmt.Errorf("encode account %q: %w", id, err)
		}
		_, err = kv.Update(ctx, stream.AccountKey(id), b, rev)
		if err == nil {
			return true, nil
		}
		if !stream.IsWrongLastSeq(err) {
			return false, fmt.Errorf("account %q: %w", id, err)
		}
		// The projector wrote the account meanwhile: read it again.
	}
	return false, fmt.Errorf("account %q: the projector kept changing it over 16 attempts", id)
}

// refresh asks the projector to write the accounts' rows again and waits
// until none is marked any more, then takes the requests back.
func (s accountStore) refresh(ctx context.Context, kv jetstream.KeyValue, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if _, err := kv.Put(ctx, stream.AccountRefreshKey(id), []byte(id)); err != nil {
			return fmt.Errorf("ask for account %q: %w", id, err)
		}
	}
	timeout, poll := s.timeout, s.poll
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	waiting := slices.Clone(ids)
	for len(waiting) > 0 {
		var still []string
		for _, id := range waiting {
			rec, _, err := record(ctx, kv, id)
			if err != nil {
				return err
			}
			if rec != nil && rec.Reproject {
				still = append(still, id)
			}
		}
		waiting = still
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d accounts (%s first) still wait after %s for a projector to write their rows without the erased customers: "+
				"is a projector with JOURNEY_PROJECTOR_ACCOUNTS_ENABLED=true running?", len(waiting), waiting[0], timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	st, err := s.js.Stream(ctx, "KV_"+s.bucket)
	if err != nil {
		return err
	}
	for _, id := range ids {
		subj := stream.KVKeyPrefix(s.bucket) + stream.AccountRefreshKey(id)
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return fmt.Errorf("purge %s: %w", subj, err)
		}
	}
	return nil
}
