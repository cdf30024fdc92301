package stack_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/api"
)

// Erasing a customer whose contacts belong to an account removes them
// from the account everywhere journey keeps it: the account record and
// the contact directory in the bucket, and every account_state row; the
// account itself stays, written again by the projector from what is left.
func TestAccountsEraseCustomerFromItsAccounts(t *testing.T) {
	ctx := context.Background()
	st := startAccountStack(t)
	const gone = "cust-acme-2" // uma and gus, both users of acme
	var before api.AccountJSON
	getJSON(t, st.api+"/v1/accounts/acme", 200, &before)

	p := st.cfg.Projector
	svc, err := privacy.Open(ctx, st.js, st.db, privacy.Options{Names: privacy.Names{StateBucket: p.Bucket,
		IndexBucket: p.IndexBucket, OutboxStream: p.OutboxStream, AccountsBucket: p.Accounts.Bucket}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := svc.Erase(ctx, "", []string{gone})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, s := range rc.Stores {
		counts[s.Store] = s.Count
	}
	t.Logf("receipt: %+v", rc.Stores)
	// Two contact entries (uma, gus) and the one account that held them;
	// every account_state row of acme written while they were members.
	if n := counts["stream KV_"+p.Accounts.Bucket]; n != 3 {
		t.Errorf("the receipt counts %d in the account bucket, want 3 (2 contacts, 1 account)", n)
	}
	if counts["table account_state"] == 0 {
		t.Errorf("the receipt counts no account_state rows: %+v", rc.Stores)
	}

	// The bucket: no contact entry, no refresh request, and acme's record
	// without them and no longer marked.
	kv, err := st.js.KeyValue(ctx, p.Accounts.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if owner, ok := stream.AccountContactOwner(k); ok && owner == stream.AccountContactPrefix(gone) {
			t.Errorf("contact entry %s is left", k)
		}
		if strings.HasPrefix(k, "r.") {
			t.Errorf("refresh request %s is left", k)
		}
	}
	e, err := kv.Get(ctx, stream.AccountKey("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), gone) {
		t.Errorf("acme's record still names %s: %s", gone, e.Value())
	}
	var rec projection.AccountRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Reproject {
		t.Errorf("acme's record: %v, reproject %v", err, rec.Reproject)
	}

	// ClickHouse: no row of any version names them; acme is still there,
	// written again from its other contacts.
	var left uint64
	if err := st.db.Conn.QueryRow(ctx, "SELECT count() FROM account_state WHERE position(view, ?) > 0", gone).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d account_state rows still name %s", left, gone)
	}
	var after api.AccountJSON
	getJSON(t, st.api+"/v1/accounts/acme", 200, &after)
	var contacts []string
	for _, m := range after.Members {
		contacts = append(contacts, m.ContactID+":"+m.Role)
	}
	// bob 4 (detractor) and ivo 8 (passive) are the respondents left:
	// NPS = 100 x (0-1)/2.
	if want := []string{"dora:decision_maker", "ivo:influencer", "bob:buyer"}; !reflect.DeepEqual(contacts, want) {
		t.Errorf("acme members after the erasure %v, want %v", contacts, want)
	}
	if after.NPS.NPS == nil || *after.NPS.NPS != -50 || after.NPS.Respondents != 2 {
		t.Errorf("acme nps after the erasure %+v, want -50 over 2 respondents", after.NPS)
	}
	if after.Stage != before.Stage || !reflect.DeepEqual(after.Explain, before.Explain) {
		t.Errorf("the erasure changed acme's stage or history: %s %+v, was %s %+v", after.Stage, after.Explain, before.Stage, before.Explain)
	}
	if after.Coverage == nil || !reflect.DeepEqual(after.Uncovered, []string{"user", "gatekeeper"}) {
		t.Errorf("acme coverage %v uncovered %v: its only users were erased", after.Coverage, after.Uncovered)
	}

	// Run again (idempotent): nothing is left to count.
	rc2, err := svc.Erase(ctx, "", []string{gone})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rc2.Stores {
		if strings.Contains(s.Store, p.Accounts.Bucket) || s.Store == "table account_state" {
			if s.Count != 0 {
				t.Errorf("a second erasure counts %d in %s", s.Count, s.Store)
			}
		}
	}
}
