package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/projector"
)

func withAccounts(cfg projector.Config) projector.Config {
	cfg.Projector.Accounts = projector.AccountSettings{Enabled: true, Bucket: randName("acct_"),
		CoverageWindow: 90 * journey.Day, GapWindow: 30 * journey.Day}
	return cfg
}

// accountRecords reads every account record of a bucket.
func accountRecords(t testing.TB, js jetstream.JetStream, bucket string) []projection.AccountRecord {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeysFiltered(ctx, "a.>")
	if err != nil {
		t.Fatal(err)
	}
	var out []projection.AccountRecord
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var rec projection.AccountRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// pendingAccountEvents counts the derived events the account records of a
// bucket still hold unpublished.
func pendingAccountEvents(t testing.TB, js jetstream.JetStream, bucket string) int {
	t.Helper()
	n := 0
	for _, rec := range accountRecords(t, js, bucket) {
		n += len(rec.Pending)
	}
	return n
}

// kvAccountStates reads every account state of a bucket as canonical JSON
// (the flags, which the last apply's clock derived, left out).
func kvAccountStates(t testing.TB, js jetstream.JetStream, bucket string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rec := range accountRecords(t, js, bucket) {
		if len(rec.Pending) > 0 {
			t.Errorf("account %s left with %d pending derived events", rec.State.AccountID, len(rec.Pending))
		}
		rec.State.Flags = account.Flags{}
		b, _ := json.Marshal(rec.State)
		out[rec.State.AccountID] = string(b)
	}
	return out
}

// accountReference applies, per account, every event of every contact
// that ever named it with the pure rules, in one call.
func accountReference(t testing.TB, events []touchpoint.Event, now time.Time) map[string]string {
	rules, err := account.New(account.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	byContact := map[string][]account.Event{}
	accountsOf := map[string]map[string]bool{}
	for i := range events {
		e := &events[i]
		p, err := touchpoint.Validate(e, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.AccountID == "" {
			continue
		}
		k := account.ContactKey(e.Subject, p.ContactID)
		byContact[k] = append(byContact[k], account.Event{CustomerID: e.Subject, Event: journey.FromTouchpoint(e, &p, 0)})
		if accountsOf[k] == nil {
			accountsOf[k] = map[string]bool{}
		}
		accountsOf[k][p.AccountID] = true
	}
	by := map[string][]account.Event{}
	for k, evs := range byContact {
		for a := range accountsOf[k] {
			by[a] = append(by[a], evs...)
		}
	}
	out := map[string]string{}
	for id, evs := range by {
		s := account.NewState(id)
		rules.Apply(s, now, evs, nil)
		s.Flags = account.Flags{}
		b, _ := json.Marshal(s)
		out[id] = string(b)
	}
	return out
}

func diffAccounts(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d accounts, want %d", what, len(got), len(want))
	}
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if got[id] != want[id] {
			t.Fatalf("%s: account %s differs\n got  %s\n want %s", what, id, got[id], want[id])
		}
	}
}

// The account states equal the pure rules over the same events, after an
// uninterrupted run, after the projector was killed with SIGKILL mid-load
// and restarted, and with two instances sharing the partitions (and so
// updating shared accounts concurrently).
func TestAccountsKillRestartAndPartitionsGiveTheRulesState(t *testing.T) {
	needsSIGKILL(t)
	now := time.Now().UTC()
	events := b2bJourneys(9, 1500, now)
	br := brokerWith(t, events)
	js := br.js
	ref := accountReference(t, events, now)
	t.Logf("%d events, %d accounts", len(events), len(ref))

	one := withAccounts(br.config(warehousetest.Config(t)))
	projectAll(t, js, one)
	diffAccounts(t, "uninterrupted", kvAccountStates(t, js, one.Projector.Accounts.Bucket), ref)

	killed := withAccounts(br.config(warehousetest.Config(t)))
	env := childEnv(br, killed, "JOURNEY_PROJECTOR_BATCH_SIZE=100", "JOURNEY_PROJECTOR_ACK_WAIT=2s",
		"JOURNEY_PROJECTOR_ACCOUNTS_ENABLED=true", "JOURNEY_PROJECTOR_ACCOUNTS_BUCKET="+killed.Projector.Accounts.Bucket)
	killMidwayAndRestart(t, br, killed, env, len(events))
	// Derived events a killed projector committed but did not publish are
	// published by its successor (the record keeps them pending until then).
	waitUntil(t, time.Minute, "the restarted projector to publish the pending account events", func() bool {
		return pendingAccountEvents(t, js, killed.Projector.Accounts.Bucket) == 0
	})
	diffAccounts(t, "after SIGKILL and restart", kvAccountStates(t, js, killed.Projector.Accounts.Bucket), ref)
	compareAccountRows(t, one, killed)

	two := withAccounts(br.config(warehousetest.Config(t)))
	projectSplit(t, js, two)
	diffAccounts(t, "two instances", kvAccountStates(t, js, two.Projector.Accounts.Bucket), ref)
	compareAccountRows(t, one, two)
}

// compareAccountRows: account_state holds the same stage, flags and counts
// per account in both runs.
func compareAccountRows(t *testing.T, a, b projector.Config) {
	t.Helper()
	ctx := context.Background()
	read := func(cfg projector.Config) []warehouse.AccountState {
		db := openDB(t, cfg.ClickHouse)
		list, err := db.Accounts(ctx, warehouse.AccountFilter{Limit: 1000000})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	ra, rb := read(a), read(b)
	if len(ra) != len(rb) || len(ra) == 0 {
		t.Fatalf("account_state: %d vs %d accounts", len(ra), len(rb))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		x.Version, y.Version, x.UpdatedAt, y.UpdatedAt, x.NextChange, y.NextChange = 0, 0, time.Time{}, time.Time{}, nil, nil
		xj, _ := json.Marshal(x)
		yj, _ := json.Marshal(y)
		if string(xj) != string(yj) {
			t.Fatalf("account_state differs:\n%s\n%s", xj, yj)
		}
	}
	t.Logf("account_state: %d accounts agree", len(ra))
}

// Bad account settings are refused before anything starts, naming the
// variable.
func TestAccountSettingsAreChecked(t *testing.T) {
	br := freshStreams(t)
	for name, mod := range map[string]func(*projector.AccountSettings, *projector.Settings){
		"gap window 0":         func(a *projector.AccountSettings, _ *projector.Settings) { a.GapWindow = 0 },
		"coverage negative":    func(a *projector.AccountSettings, _ *projector.Settings) { a.CoverageWindow = -time.Hour },
		"bucket of customers":  func(a *projector.AccountSettings, s *projector.Settings) { a.Bucket = s.Bucket },
		"bucket of the expiry": func(a *projector.AccountSettings, s *projector.Settings) { a.Bucket = s.IndexBucket },
		"no bucket":            func(a *projector.AccountSettings, _ *projector.Settings) { a.Bucket = "" },
	} {
		cfg := withAccounts(br.config(warehouse.Config{Addr: "127.0.0.1:1"}))
		mod(&cfg.Projector.Accounts, &cfg.Projector)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := projector.Run(ctx, cfg, testLog(t))
		cancel()
		if !errors.Is(err, projector.ErrConfig) || !strings.Contains(err.Error(), "JOURNEY_PROJECTOR_ACCOUNTS_") {
			t.Errorf("%s: Run = %v, want ErrConfig naming JOURNEY_PROJECTOR_ACCOUNTS_*", name, err)
		}
	}
}
