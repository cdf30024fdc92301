package projection

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// AccountRecord is what the store keeps per account: the rules' state and
// the derived events of its last change until they are known to be
// published.
type AccountRecord struct {
	State *account.State `json:"state"`
	// Pending are derived events committed with State and maybe not yet
	// published: whoever reads the record next publishes them (ids are
	// deterministic, so the stream drops a repeat) before anything else.
	Pending []touchpoint.Event `json:"pending,omitempty"`
	// Reproject is set by an erasure that removed a customer's contacts
	// from State (pkg/privacy): the next commit writes the account's rows
	// even when the rules see no change, so that the warehouse gets a row
	// without them, and clears it.
	Reproject bool `json:"reproject,omitempty"`
}

// AccountStore keeps account records and contact directory entries, each
// with a revision for compare-and-set. It must be safe for concurrent use:
// an account's contacts may belong to customers of different partitions.
type AccountStore interface {
	// GetAccount returns the record and its revision, or an error
	// wrapping ErrNotFound.
	GetAccount(ctx context.Context, accountID string) (*AccountRecord, uint64, error)
	// PutAccount writes with compare-and-set (rev 0: must not exist yet);
	// a lost compare-and-set is an error wrapping ErrConflict.
	PutAccount(ctx context.Context, r *AccountRecord, rev uint64) (uint64, error)
	// GetContact and PutContact do the same for a contact's entry, keyed
	// by account.ContactKey.
	GetContact(ctx context.Context, key string) (*account.Contact, uint64, error)
	PutContact(ctx context.Context, key string, c *account.Contact, rev uint64) (uint64, error)
}

// AccountSink receives account updates for the warehouse. Writes must be
// idempotent.
type AccountSink interface {
	WriteAccounts(ctx context.Context, updates []AccountUpdate) error
}

// AccountUpdate is one account's committed change.
type AccountUpdate struct {
	State  *account.State
	View   account.View
	Change account.Change
	// Version grows with every committed update of the account (the
	// store revision it replaced, plus one).
	Version uint64
	At      time.Time
}

// AccountOptions configure [Accounts]; Rules, Store, Sink and Emitter are
// required.
type AccountOptions struct {
	Rules   *account.Rulebook
	Store   AccountStore
	Sink    AccountSink
	Emitter Emitter
	// Source of derived events (default "/journey/projector").
	Source string
	// Attempts bounds the compare-and-set retries of one account in one
	// call (default 8); past it the call fails and the batch is retried.
	Attempts int
	// SweepLimit bounds the accounts one sweep round advances (default 500).
	SweepLimit int
	// Concurrency bounds parallel store reads and writes (default 32).
	Concurrency int
	// CacheSize bounds the account records and contact entries kept in
	// memory (default 100000 of each); a miss costs a store read.
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Accounts keeps the account projection: for every batch the customer
// projector commits, it routes the events to the accounts they concern
// and commits those first. It is safe for concurrent use by the partitions
// of one process; processes share nothing but the store, whose
// compare-and-set settles concurrent updates of one account.
//
// Guarantees, as for customers: every account write is idempotent (the
// rules ignore facts they hold), rows and derived events are written
// before the state, and [Projector] calls Apply before it writes the
// customers' states, so that a crash anywhere leaves the batch
// unacknowledged and its re-run completes the accounts.
type Accounts struct {
	o        AccountOptions
	mu       sync.Mutex
	schedule map[string]time.Time
	// stripes serialise the partitions of this process on an account, so
	// that they do not lose compare-and-sets to each other; other
	// processes are still settled by the compare-and-set.
	stripes [256]sync.Mutex
	cache   *accountCache
}

// NewAccounts checks the options.
func NewAccounts(o AccountOptions) (*Accounts, error) {
	if o.Rules == nil || o.Store == nil || o.Sink == nil || o.Emitter == nil {
		return nil, fmt.Errorf("%w: account rules, store, sink and emitter are required", ErrOptions)
	}
	o.Source = cmp.Or(o.Source, defaultSource)
	o.Attempts = orDefault(o.Attempts, 8)
	o.SweepLimit = orDefault(o.SweepLimit, 500)
	o.Concurrency = orDefault(o.Concurrency, defaultConcurrency)
	if o.Now == nil {
		o.Now = time.Now
	}
	o.CacheSize = orDefault(o.CacheSize, defaultCacheSize)
	return &Accounts{o: o, schedule: map[string]time.Time{}, cache: newAccountCache(o.CacheSize)}, nil
}

// Scheduled is the number of accounts waiting for a time-only change.
func (a *Accounts) Scheduled() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.schedule)
}

// Apply commits the account side of msgs (the events of a customer batch).
// Reads and writes of the batch's contacts and accounts go out side by
// side (at most Concurrency at once) and the rows of all its accounts in
// one outbox write; an account whose compare-and-set is lost is then
// committed again on its own (see commit).
func (a *Accounts) Apply(ctx context.Context, msgs []Msg) error {
	now := a.o.Now()
	byContact := map[string][]account.Event{}
	for i := range msgs {
		m := &msgs[i]
		if m.Event.AccountID == "" {
			continue
		}
		k := account.ContactKey(m.CustomerID, m.Event.ContactID)
		byContact[k] = append(byContact[k], account.Event{CustomerID: m.CustomerID, Event: m.Event})
	}
	if len(byContact) == 0 {
		return nil
	}
	keys := make([]string, 0, len(byContact))
	for k := range byContact {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	type contactSlot struct {
		c       *account.Contact
		rev     uint64
		changed bool
	}
	cs := make([]contactSlot, len(keys))
	ok := false
	defer func() {
		if !ok { // entries changed in memory and maybe not written
			a.cache.dropContacts(keys)
		}
	}()
	err := a.parallel(len(keys), func(i int) error {
		if e, hit := a.cache.contact(keys[i]); hit {
			cs[i] = contactSlot{c: e.c, rev: e.rev}
			return nil
		}
		c, rev, err := a.o.Store.GetContact(ctx, keys[i])
		switch {
		case errors.Is(err, ErrNotFound):
			cust, ct := account.SplitContactKey(keys[i])
			c, rev = &account.Contact{CustomerID: cust, ContactID: ct}, 0
		case err != nil:
			return fmt.Errorf("projection: contact %q: %w", keys[i], err)
		}
		cs[i] = contactSlot{c: c, rev: rev}
		return nil
	})
	if err != nil {
		return err
	}
	events := map[string][]account.Event{}
	places := map[string]map[string]account.Placement{}
	for i, k := range keys {
		evs := byContact[k]
		for j := range evs {
			cs[i].changed = cs[i].c.Observe(&evs[j]) || cs[i].changed
		}
		p, _ := cs[i].c.Latest()
		for _, acct := range cs[i].c.AccountIDs() {
			events[acct] = append(events[acct], evs...)
			if places[acct] == nil {
				places[acct] = map[string]account.Placement{}
			}
			places[acct][k] = p
		}
	}
	ids := make([]string, 0, len(events))
	for id := range events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if err := a.commitMany(ctx, ids, now, events, places); err != nil {
		return err
	}
	// Contacts last: an account written without its contact's entry is
	// re-applied (idempotently) when the batch is re-run.
	err = a.parallel(len(keys), func(i int) error {
		if cs[i].changed {
			rev, err := a.o.Store.PutContact(ctx, keys[i], cs[i].c, cs[i].rev)
			if err != nil {
				return fmt.Errorf("projection: contact %q: %w", keys[i], err)
			}
			cs[i].rev = rev
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range keys {
		a.cache.setContact(k, cs[i].c, cs[i].rev)
	}
	ok = true
	return nil
}

// parallel runs fn(0..n-1) with at most Concurrency at once and joins
// their errors.
func (a *Accounts) parallel(n int, fn func(i int) error) error {
	if n == 1 {
		return fn(0)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, a.o.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// accountSlot is one account of commitMany.
type accountSlot struct {
	rec     *AccountRecord
	rev     uint64
	flushed bool // it had pending events, published by readAccounts
	changed bool
	lost    bool // its compare-and-set was lost: commit retries it alone
	view    account.View
	// pending is rec.Pending as written, taken while the stripes are
	// held: a record without events goes back to the cache, where another
	// partition may take and change it once the stripes are released.
	pending []touchpoint.Event
}

// commitMany is commit for many accounts at once, in the same order of
// writes: all reads, one publish of the pending events found, the applies,
// one warehouse write, all compare-and-sets, one publish of the new
// events, the clears. Accounts whose compare-and-set is lost go through
// commit one by one.
func (a *Accounts) commitMany(ctx context.Context, ids []string, now time.Time,
	events map[string][]account.Event, places map[string]map[string]account.Placement) (err error) {
	unlock := a.lock(ids)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	defer func() {
		if err != nil { // records changed in memory and maybe not written
			a.cache.dropAccounts(ids)
		}
	}()
	slots, err := a.readAccounts(ctx, ids)
	if err != nil {
		return err
	}
	var updates []AccountUpdate
	for i := range slots {
		sl := &slots[i]
		ch := a.o.Rules.Apply(sl.rec.State, now, events[ids[i]], places[ids[i]])
		sl.view = a.o.Rules.View(sl.rec.State, now)
		sl.rec.Pending = nil
		if !ch.Changed() && !sl.rec.Reproject {
			continue
		}
		sl.rec.Reproject = false
		sl.changed = true
		u := AccountUpdate{State: sl.rec.State, View: sl.view, Change: ch, Version: sl.rev + 1, At: now}
		sl.rec.Pending = a.derived(&u)
		updates = append(updates, u)
	}
	if len(updates) > 0 {
		if err := a.o.Sink.WriteAccounts(ctx, updates); err != nil {
			return fmt.Errorf("projection: account warehouse: %w", err)
		}
	}
	err = a.parallel(len(slots), func(i int) error {
		sl := &slots[i]
		if !sl.changed && !sl.flushed {
			return nil
		}
		rev, err := a.o.Store.PutAccount(ctx, sl.rec, sl.rev)
		switch {
		case errors.Is(err, ErrConflict):
			sl.lost = sl.changed // an unchanged one lost its clear: the winner published its events too
			return nil
		case err != nil:
			return fmt.Errorf("projection: account %q: %w", ids[i], err)
		}
		sl.rev = rev
		return nil
	})
	if err != nil {
		return err
	}
	// The records are written: the cache takes them, and the stripes are
	// released before the publish, which the compare-and-set keeps safe.
	// Records with events to clear are re-read next time: the clear below
	// moves their revision on outside the stripes.
	for i, id := range ids {
		if !slots[i].lost {
			slots[i].pending = slots[i].rec.Pending
		}
		if slots[i].lost || len(slots[i].pending) > 0 {
			a.cache.dropAccounts([]string{id})
		} else {
			a.cache.setAccount(id, slots[i].rec, slots[i].rev)
		}
	}
	unlock()
	locked = false
	if err := a.publishPending(ctx, ids, slots); err != nil {
		return err
	}
	for i, id := range ids {
		if slots[i].lost {
			if err := a.commit(ctx, id, now, events[id], places[id]); err != nil {
				return err
			}
			continue
		}
		a.Schedule(id, slots[i].view.Next)
	}
	return nil
}

// readAccounts reads the accounts side by side and publishes, in one go,
// the derived events a previous writer left pending in them.
func (a *Accounts) readAccounts(ctx context.Context, ids []string) ([]accountSlot, error) {
	slots := make([]accountSlot, len(ids))
	err := a.parallel(len(ids), func(i int) error {
		if e, hit := a.cache.account(ids[i]); hit {
			slots[i] = accountSlot{rec: e.rec, rev: e.rev}
			return nil
		}
		rec, rev, err := a.o.Store.GetAccount(ctx, ids[i])
		switch {
		case errors.Is(err, ErrNotFound):
			rec, rev = &AccountRecord{State: account.NewState(ids[i])}, 0
		case err != nil:
			return fmt.Errorf("projection: account %q: %w", ids[i], err)
		}
		slots[i] = accountSlot{rec: rec, rev: rev}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var old []touchpoint.Event
	for i := range slots {
		if p := slots[i].rec.Pending; len(p) > 0 {
			old = append(old, p...)
			slots[i].flushed = true
		}
	}
	if len(old) > 0 {
		if err := a.o.Emitter.Emit(ctx, old); err != nil {
			return nil, fmt.Errorf("projection: account derived events: %w", err)
		}
	}
	return slots, nil
}

// publishPending publishes the derived events of the committed accounts
// in one go, then clears them from the records. It runs outside the
// stripes, so it touches only the records that have events: those were
// dropped from the cache and are this call's alone.
func (a *Accounts) publishPending(ctx context.Context, ids []string, slots []accountSlot) error {
	var fresh []touchpoint.Event
	for i := range slots {
		fresh = append(fresh, slots[i].pending...)
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := a.o.Emitter.Emit(ctx, fresh); err != nil {
		return fmt.Errorf("projection: account derived events: %w", err)
	}
	return a.parallel(len(slots), func(i int) error {
		sl := &slots[i]
		if len(sl.pending) == 0 {
			return nil
		}
		sl.rec.Pending = nil
		rev, err := a.o.Store.PutAccount(ctx, sl.rec, sl.rev)
		switch {
		case errors.Is(err, ErrConflict):
			// Another writer read the record since, and published the
			// pending events itself.
		case err != nil:
			return fmt.Errorf("projection: account %q: %w", ids[i], err)
		default:
			sl.rev = rev
		}
		return nil
	})
}

// Sweep advances the accounts whose next time-only change is due, at most
// SweepLimit per call, and reports how many it advanced.
func (a *Accounts) Sweep(ctx context.Context) (int, error) {
	now := a.o.Now()
	a.mu.Lock()
	var due []string
	for id, at := range a.schedule {
		if !at.After(now) {
			due = append(due, id)
		}
	}
	a.mu.Unlock()
	slices.Sort(due)
	if len(due) > a.o.SweepLimit {
		due = due[:a.o.SweepLimit]
	}
	if err := a.commitMany(ctx, due, now, nil, nil); err != nil {
		return 0, err
	}
	return len(due), nil
}

// Refresh commits the accounts as they are now, without new events: an
// account the rules see no change in is written only when its record asks
// for it (Reproject, set by an erasure). The projector calls it when an
// erasure asks (services/projector watches the bucket's "r." keys).
func (a *Accounts) Refresh(ctx context.Context, ids []string) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// The erasure changed the records behind this process's back: cached
	// copies are dropped under the stripes, so every commit from here on
	// reads what the erasure wrote.
	unlock := a.lock(ids)
	a.cache.dropAccounts(ids)
	unlock()
	return a.commitMany(ctx, ids, a.o.Now(), nil, nil)
}

// Schedule registers an account's next time-only change (used when a
// process starts, from the stored states); zero removes it.
func (a *Accounts) Schedule(accountID string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at.IsZero() {
		delete(a.schedule, accountID)
	} else {
		a.schedule[accountID] = at
	}
}

// commit applies to one account with compare-and-set, re-reading and
// re-applying when another writer got there first. The order makes a
// crash or a lost compare-and-set safe: rows are written first (a lost
// attempt's row is outranked by the next version), the state is written
// with its derived events as pending, and only then are they published
// and the pending list cleared. An attempt that loses the compare-and-set
// has published nothing, so no event describes a state that was never
// committed; a crash after the state leaves the events pending for the
// next reader.
func (a *Accounts) commit(ctx context.Context, id string, now time.Time, evs []account.Event, places map[string]account.Placement) error {
	for attempt := 0; attempt < a.o.Attempts; attempt++ {
		rec, rev, err := a.o.Store.GetAccount(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			rec, rev = &AccountRecord{State: account.NewState(id)}, 0
		case err != nil:
			return fmt.Errorf("projection: account %q: %w", id, err)
		}
		if len(rec.Pending) > 0 {
			if err := a.o.Emitter.Emit(ctx, rec.Pending); err != nil {
				return fmt.Errorf("projection: account derived events: %w", err)
			}
		}
		s := rec.State
		ch := a.o.Rules.Apply(s, now, evs, places)
		view := a.o.Rules.View(s, now)
		if !ch.Changed() && !rec.Reproject {
			if len(rec.Pending) > 0 {
				rec.Pending = nil
				_, _ = a.o.Store.PutAccount(ctx, rec, rev) // lost: whoever won published them too
			}
			a.Schedule(id, view.Next)
			return nil
		}
		rec.Reproject = false
		u := AccountUpdate{State: s, View: view, Change: ch, Version: rev + 1, At: now}
		if err := a.o.Sink.WriteAccounts(ctx, []AccountUpdate{u}); err != nil {
			return fmt.Errorf("projection: account warehouse: %w", err)
		}
		rec.Pending = a.derived(&u)
		rev, err = a.o.Store.PutAccount(ctx, rec, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("projection: account %q: %w", id, err)
		}
		if len(rec.Pending) > 0 {
			if err := a.o.Emitter.Emit(ctx, rec.Pending); err != nil {
				return fmt.Errorf("projection: account derived events: %w", err)
			}
			rec.Pending = nil
			// A lost compare-and-set here means another writer read the
			// record since, and published the pending events itself.
			if _, err := a.o.Store.PutAccount(ctx, rec, rev); err != nil && !errors.Is(err, ErrConflict) {
				return fmt.Errorf("projection: account %q: %w", id, err)
			}
		}
		a.Schedule(id, view.Next)
		return nil
	}
	return fmt.Errorf("projection: account %q: %w after %d attempts", id, ErrConflict, a.o.Attempts)
}

type accountStageChanged struct {
	AccountID     string   `json:"account_id"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	At            string   `json:"at"`
	Reason        string   `json:"reason"`
	CauseEventIDs []string `json:"cause_event_ids"`
	RulesVersion  string   `json:"rules_version"`
}

type accountGap struct {
	AccountID              string   `json:"account_id"`
	OpenQuotes             []string `json:"open_quotes"`
	Coverage               []string `json:"coverage"`
	DecisionMakerLastTouch *string  `json:"decision_maker_last_touch"`
	RulesVersion           string   `json:"rules_version"`
}

type accountAtRisk struct {
	AccountID      string   `json:"account_id"`
	Reasons        []string `json:"reasons"`
	OpenComplaints int      `json:"open_complaints"`
	NPS            *int     `json:"nps"`
	RulesVersion   string   `json:"rules_version"`
}

// derived returns the account's derived events of one update. Their ids
// hash what they say, so a re-run of the batch emits the same ids and the
// stream's duplicate window drops them.
func (a *Accounts) derived(u *AccountUpdate) []touchpoint.Event {
	var out []touchpoint.Event
	v := &u.View
	id := u.State.AccountID
	if u.Change.StageChanged() && len(v.History) > 0 {
		last := v.History[len(v.History)-1]
		d := accountStageChanged{AccountID: id, From: string(u.Change.Before.Stage), To: string(last.To),
			At: last.At.UTC().Format(time.RFC3339Nano), Reason: string(last.Reason), CauseEventIDs: last.Causes, RulesVersion: last.RulesVersion}
		if d.CauseEventIDs == nil {
			d.CauseEventIDs = []string{}
		}
		out = append(out, a.event(touchpoint.KindAccountStageChanged, id, last.At, d,
			strconv.Itoa(len(v.History)-1), d.From, d.To, d.At, d.Reason))
	}
	if u.Change.GapOpened() {
		d := accountGap{AccountID: id, OpenQuotes: v.OpenQuotes, Coverage: v.Coverage, RulesVersion: v.RulesVersion}
		for _, m := range v.Members {
			if m.Role == account.RoleDecisionMaker && !m.LastTouch.IsZero() {
				t := m.LastTouch.UTC().Format(time.RFC3339Nano)
				if d.DecisionMakerLastTouch == nil || *d.DecisionMakerLastTouch < t {
					d.DecisionMakerLastTouch = &t
				}
			}
		}
		dm := ""
		if d.DecisionMakerLastTouch != nil {
			dm = *d.DecisionMakerLastTouch
		}
		out = append(out, a.event(touchpoint.KindAccountDMUGap, id, u.At, d, strings.Join(v.OpenQuotes, ","), dm))
	}
	if u.Change.BecameAtRisk() {
		d := accountAtRisk{AccountID: id, Reasons: v.AtRiskReasons, OpenComplaints: v.OpenComplaints, RulesVersion: v.RulesVersion}
		if v.NPS.OK {
			n := v.NPS.Value
			d.NPS = &n
		}
		out = append(out, a.event(touchpoint.KindAccountAtRisk, id, u.At, d,
			strings.Join(v.AtRiskReasons, ","), strconv.Itoa(v.OpenComplaints), v.LastTouch.UTC().Format(time.RFC3339Nano)))
	}
	return out
}

func (a *Accounts) event(k touchpoint.Kind, accountID string, at time.Time, data any, key ...string) touchpoint.Event {
	raw, _ := json.Marshal(data) // plain structs of strings and ints: cannot fail
	t := touchpoint.TypeOf(k)
	return touchpoint.Event{
		ID:              hashID(append([]string{string(k), accountID}, key...)...),
		Source:          a.o.Source,
		Type:            t,
		Subject:         accountID,
		Time:            at.UTC(),
		DataContentType: touchpoint.ContentTypeJSON,
		DataSchema:      touchpoint.SchemaURI(t),
		Data:            raw,
	}
}

// applyAccounts hands the events of a batch to the account hook.
func (p *Projector) applyAccounts(ctx context.Context, msgs []Msg) error {
	if err := p.o.Accounts.Apply(ctx, msgs); err != nil {
		return fmt.Errorf("projection: accounts: %w", err)
	}
	return nil
}

// ScheduleState registers a stored account's next time-only change, as
// the rules derive it now.
func (a *Accounts) ScheduleState(s *account.State) {
	v := a.o.Rules.View(s, a.o.Now())
	a.Schedule(s.AccountID, v.Next)
}
