package projection

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/klantreis/journey/pkg/account"
)

// accountCache keeps account records and contact entries with their store
// revisions. An entry is only ever the last record this process wrote or
// read; one that another process changed since is found out by the
// compare-and-set of the next write, which then re-reads the store. A
// record that was changed in memory but not written is dropped.
type accountCache struct {
	mu       sync.Mutex
	max      int
	accounts map[string]cachedAccount
	contacts map[string]cachedContact
}

type cachedAccount struct {
	rec *AccountRecord
	rev uint64
}

type cachedContact struct {
	c   *account.Contact
	rev uint64
}

func newAccountCache(max int) *accountCache {
	return &accountCache{max: max, accounts: map[string]cachedAccount{}, contacts: map[string]cachedContact{}}
}

func (c *accountCache) account(id string) (cachedAccount, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.accounts[id]
	return e, ok
}

func (c *accountCache) setAccount(id string, rec *AccountRecord, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	putBounded(c.accounts, c.max, id, cachedAccount{rec, rev})
}

func (c *accountCache) dropAccounts(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.accounts, id)
	}
}

func (c *accountCache) contact(k string) (cachedContact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.contacts[k]
	return e, ok
}

func (c *accountCache) setContact(k string, ct *account.Contact, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	putBounded(c.contacts, c.max, k, cachedContact{ct, rev})
}

// putBounded stores v under k in m, which holds at most max entries: a new
// key evicts a random victim (map order) from a full m. Accounts and
// contacts are bounded alike, each map on its own.
func putBounded[V any](m map[string]V, max int, k string, v V) {
	if _, ok := m[k]; !ok && len(m) >= max {
		for x := range m {
			delete(m, x)
			break
		}
	}
	m[k] = v
}

func (c *accountCache) dropContacts(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.contacts, k)
	}
}

var stripeSeed = maphash.MakeSeed()

// lock takes the stripes of ids in ascending order (so that two callers
// with overlapping ids cannot deadlock) and returns their release.
func (a *Accounts) lock(ids []string) func() {
	var idx []int
	seen := map[int]bool{}
	for _, id := range ids {
		i := int(maphash.String(stripeSeed, id) % uint64(len(a.stripes)))
		if !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		a.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			a.stripes[i].Unlock()
		}
	}
}
