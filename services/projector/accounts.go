package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// AccountSettings configure the account projection (issue 17,
// JOURNEY_PROJECTOR_ACCOUNTS_*). The stage thresholds are the customer
// rules' (LOYAL_ORDERS, LOYAL_WINDOW, INACTIVE_AFTER), counted over all the
// account's contacts.
type AccountSettings struct {
	// Enabled turns the account projection on (default false): every
	// committed batch then also updates the accounts its events name.
	// Events projected before it was turned on are not replayed into
	// accounts; replay the stream into a fresh deployment for that.
	Enabled bool `envconfig:"ENABLED" default:"false"`
	// Bucket is the key-value bucket of account states ("a.<account key>")
	// and contact directory entries ("c.<contact key>") (default
	// journey_accounts).
	Bucket string `envconfig:"BUCKET" default:"journey_accounts"`
	// CoverageWindow: a DMU role is covered when a current contact with it
	// had a touchpoint within this before now (default 2160h = 90 days).
	CoverageWindow time.Duration `envconfig:"COVERAGE_WINDOW" default:"2160h"`
	// GapWindow: an open quote is a coverage gap when no current decision
	// maker had a touchpoint within this (default 720h = 30 days).
	GapWindow time.Duration `envconfig:"GAP_WINDOW" default:"720h"`
}

// AccountRules returns the account rules the settings configure.
func (s Settings) AccountRules() account.Rules {
	return account.Rules{Stage: s.Rules(), CoverageWindow: s.Accounts.CoverageWindow, GapWindow: s.Accounts.GapWindow}
}

func (s Settings) validateAccounts() error {
	if !s.Accounts.Enabled {
		return nil
	}
	if s.Accounts.Bucket == "" || s.Accounts.Bucket == s.Bucket || s.Accounts.Bucket == s.IndexBucket {
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_ACCOUNTS_BUCKET must be set and differ from the customer and index buckets", ErrConfig)
	}
	if err := s.AccountRules().Validate(); err != nil {
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_ACCOUNTS_*: %w", ErrConfig, err)
	}
	return nil
}

// accountService is the account projection of one process.
type accountService struct {
	acc      *projection.Accounts
	store    *kvAccounts
	interval time.Duration
	retryMax time.Duration
}

// hook is the projection option: nil (no interface value) when off.
func (a *accountService) hook() projection.AccountHook {
	if a == nil {
		return nil
	}
	return a.acc
}

func newAccountService(s Settings, js jetstream.JetStream, kv jetstream.KeyValue, emitter projection.Emitter,
	outbox string, timeout time.Duration, nc *nats.Conn) (*accountService, error) {
	if !s.Accounts.Enabled {
		return nil, nil
	}
	rules, err := account.New(s.AccountRules())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	store := &kvAccounts{kv: kv}
	sink := &accountOutbox{js: js, subject: outboxSubject(outbox), timeout: timeout, maxBytes: bodyLimit(nc)}
	acc, err := projection.NewAccounts(projection.AccountOptions{Rules: rules, Store: store, Sink: sink, Emitter: emitter})
	if err != nil {
		return nil, err
	}
	return &accountService{acc: acc, store: store, interval: s.SweepInterval, retryMax: s.MaxBackoff}, nil
}

// run rebuilds the sweep schedule from the stored accounts, then sweeps
// every interval until ctx ends.
func (a *accountService) run(ctx context.Context, log *slog.Logger) {
	if err := keepTrying(ctx, log, "load account schedule", a.retryMax, a.loadSchedule); err != nil {
		return
	}
	ops.Every(ctx, a.interval, func(ctx context.Context) {
		for ctx.Err() == nil {
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			n, err := a.acc.Sweep(actx)
			cancel()
			if err != nil {
				log.Warn("account sweep failed; next round retries", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
	})
}

// refresh commits again the accounts an erasure asks for (the bucket's
// "r." keys, written by pkg/privacy after it removed a customer's
// contacts): each is committed as it is now, which writes its rows
// without them. The erasure waits for the records' Reproject to clear and
// then deletes the keys, so a projector that starts meanwhile finds them
// in the watch's first values. Any instance may do it; the
// compare-and-set settles two at once.
func (a *accountService) refresh(ctx context.Context, log *slog.Logger) {
	_ = keepTrying(ctx, log, "watch account refresh requests", a.retryMax, func(ctx context.Context) error {
		return a.watchRefresh(ctx, log)
	})
}

var errWatchEnded = errors.New("the watch ended")

func (a *accountService) watchRefresh(ctx context.Context, log *slog.Logger) error {
	w, err := a.store.kv.Watch(ctx, stream.AccountRefreshFilter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errWatchEnded
			}
			if e == nil { // the first values are all in
				continue
			}
			id := string(e.Value())
			err := keepTrying(ctx, log, "refresh account "+id, a.retryMax, func(ctx context.Context) error {
				actx, cancel := context.WithTimeout(ctx, attemptTimeout)
				defer cancel()
				return a.acc.Refresh(actx, []string{id})
			})
			if err != nil {
				return nil // ctx ended
			}
		}
	}
}

// loadSchedule reads every account's next time-only change.
func (a *accountService) loadSchedule(ctx context.Context) error {
	rules := a.acc
	lister, err := a.store.kv.ListKeysFiltered(ctx, "a.>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	defer func() { _ = lister.Stop() }()
	for k := range lister.Keys() {
		rec, _, err := a.store.get(ctx, k)
		if err != nil {
			continue // deleted meanwhile, or undecodable: its next event reloads it
		}
		rules.ScheduleState(rec.State)
	}
	return nil
}

// kvAccounts is the projection.AccountStore over a key-value bucket.
type kvAccounts struct{ kv jetstream.KeyValue }

func accountKey(id string) string { return stream.AccountKey(id) }
func contactKey(k string) string  { return stream.AccountContactKey(k) }

func (s *kvAccounts) get(ctx context.Context, key string) (*projection.AccountRecord, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, projection.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("projector: get %s: %w", key, err)
	}
	var rec projection.AccountRecord
	err = json.Unmarshal(e.Value(), &rec)
	if err == nil && rec.State == nil {
		err = errNoState
	}
	if err != nil {
		// Treating it as absent would drop the account's facts; the batch
		// fails and is retried, and the log names the key.
		return nil, 0, fmt.Errorf("projector: decode account %s: %w", key, err)
	}
	if rec.State.Stage == nil {
		rec.State.Stage = journey.NewState(rec.State.AccountID)
	}
	return &rec, e.Revision(), nil
}

var errNoState = errors.New("no state in the record")

func (s *kvAccounts) GetAccount(ctx context.Context, id string) (*projection.AccountRecord, uint64, error) {
	return s.get(ctx, accountKey(id))
}

func (s *kvAccounts) put(ctx context.Context, key string, v any, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("projector: encode %s: %w", key, err)
	}
	var n uint64
	if rev == 0 {
		n, err = s.kv.Create(ctx, key, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%w: %s created meanwhile", projection.ErrConflict, key)
		}
	} else {
		n, err = s.kv.Update(ctx, key, b, rev)
		if stream.IsWrongLastSeq(err) {
			return 0, fmt.Errorf("%w: %s: %v", projection.ErrConflict, key, err)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("projector: put %s: %w", key, err)
	}
	return n, nil
}

func (s *kvAccounts) PutAccount(ctx context.Context, rec *projection.AccountRecord, rev uint64) (uint64, error) {
	return s.put(ctx, accountKey(rec.State.AccountID), rec, rev)
}

func (s *kvAccounts) GetContact(ctx context.Context, k string) (*account.Contact, uint64, error) {
	e, err := s.kv.Get(ctx, contactKey(k))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, projection.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("projector: get contact: %w", err)
	}
	var c account.Contact
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, 0, fmt.Errorf("projector: decode contact: %w", err)
	}
	return &c, e.Revision(), nil
}

func (s *kvAccounts) PutContact(ctx context.Context, k string, c *account.Contact, rev uint64) (uint64, error) {
	return s.put(ctx, contactKey(k), c, rev)
}

// accountRowsHeader marks an outbox message of account rows (JSON); the
// loader inserts them into account_state and account_transitions.
const accountRowsHeader = "Journey-Rows-Kind"

type accountRowSet struct {
	States      []warehouse.AccountStateRow      `json:"s,omitempty"`
	Transitions []warehouse.AccountTransitionRow `json:"t,omitempty"`
}

// accountOutbox is the projection.AccountSink: account rows take the
// customer rows' outbox, so that a ClickHouse outage does not hold up
// projecting.
type accountOutbox struct {
	js       jetstream.JetStream
	subject  string
	timeout  time.Duration
	maxBytes int
}

// WriteAccounts packs the rows of the updates into as few outbox messages
// as the broker's message size and rowsPerMsg allow: the loader inserts
// per message batch, and one message per account made many small inserts.
func (o *accountOutbox) WriteAccounts(ctx context.Context, updates []projection.AccountUpdate) error {
	var futures []jetstream.PubAckFuture
	var set accountRowSet
	size := 0
	flush := func() error {
		if len(set.States) == 0 {
			return nil
		}
		b, err := json.Marshal(set)
		if err != nil {
			return fmt.Errorf("projector: encode account rows: %w", err)
		}
		m := &nats.Msg{Subject: o.subject, Header: nats.Header{accountRowsHeader: []string{"accounts"}}, Data: b}
		f, err := o.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: outbox: %d account rows in %d bytes: %w", len(set.States), len(b), err)
		}
		futures = append(futures, f)
		set, size = accountRowSet{}, 0
		return nil
	}
	for i := range updates {
		one := accountRows(&updates[i])
		b, err := json.Marshal(one)
		if err != nil {
			return fmt.Errorf("projector: encode account rows: %w", err)
		}
		if len(b) > o.maxBytes {
			return fmt.Errorf("projector: the rows of account %q are %d bytes; the limit is %d", updates[i].State.AccountID, len(b), o.maxBytes)
		}
		// Half the limit: the packed set's JSON is a little larger than
		// the sum of its parts.
		if size+len(b) > o.maxBytes/2 || len(set.States) == rowsPerMsg {
			if err := flush(); err != nil {
				return err
			}
		}
		set.States = append(set.States, one.States...)
		set.Transitions = append(set.Transitions, one.Transitions...)
		size += len(b)
	}
	if err := flush(); err != nil {
		return err
	}
	return awaitAcks(ctx, futures, o.timeout, "outbox")
}

// accountRows are the warehouse rows of one account update: its state and
// the transitions from the first rewritten index (indexes a rewrite
// removed are written again invalid).
func accountRows(u *projection.AccountUpdate) accountRowSet {
	v := &u.View
	viewJSON, _ := json.Marshal(v) // plain data: cannot fail
	row := warehouse.AccountStateRow{AccountID: v.AccountID, Version: u.Version, UpdatedAt: u.At, Stage: string(v.Stage),
		StageSince: v.StageSince, AtRisk: v.AtRisk, AtRiskReasons: v.AtRiskReasons, Gap: v.Gap, OpenQuotes: v.OpenQuotes,
		Coverage: v.Coverage, Uncovered: v.Uncovered, Members: uint32(len(v.Members)), FormerMembers: uint32(v.Former),
		Respondents: uint32(v.NPS.Respondents), Promoters: uint32(v.NPS.Promoters), Passives: uint32(v.NPS.Passives),
		Detractors: uint32(v.NPS.Detractors), OpenComplaints: uint32(v.OpenComplaints), LastTouch: v.LastTouch,
		RulesVersion: v.RulesVersion, View: string(viewJSON)}
	if v.NPS.OK {
		n := int16(v.NPS.Value)
		row.NPS = &n
	}
	if !v.Next.IsZero() {
		t := v.Next
		row.NextChange = &t
	}
	set := accountRowSet{States: []warehouse.AccountStateRow{row}}
	sc := &u.Change.Stage
	if sc.HistoryFrom >= 0 {
		h := v.History
		for i := sc.HistoryFrom; i < len(h); i++ {
			set.Transitions = append(set.Transitions, warehouse.AccountTransitionRow{AccountID: v.AccountID, Idx: uint32(i),
				Version: u.Version, Valid: true, From: string(h[i].From), To: string(h[i].To), At: h[i].At,
				Reason: string(h[i].Reason), CauseEventIDs: h[i].Causes, RulesVersion: h[i].RulesVersion})
		}
		for i := len(h); i < sc.OldHistoryLen; i++ {
			set.Transitions = append(set.Transitions, warehouse.AccountTransitionRow{AccountID: v.AccountID, Idx: uint32(i),
				Version: u.Version, Valid: false, At: u.At})
		}
	}
	return set
}

// isAccountRows reports an outbox message of account rows.
func isAccountRows(h nats.Header) bool { return h.Get(accountRowsHeader) == "accounts" }

func (s *accountRowSet) add(data []byte) error {
	var set accountRowSet
	if err := json.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("projector: decode account rows: %w", err)
	}
	s.States = append(s.States, set.States...)
	s.Transitions = append(s.Transitions, set.Transitions...)
	return nil
}

func (s *accountRowSet) write(ctx context.Context, db *warehouse.DB) error {
	if len(s.States) == 0 && len(s.Transitions) == 0 {
		return nil
	}
	return db.WriteAccounts(ctx, s.States, s.Transitions)
}
