package stream

import "testing"

func TestAccountContactOwnerFindsTheCustomerOfAKey(t *testing.T) {
	cases := []struct {
		customer, contact string
	}{
		{"c1", "bob"},
		{"c1", ""},
		{"c10", "bob"}, // not c1's
		{"a_1F", "x"},  // an underscore and "1F" in the id
		{"ünï.cödé", "d.o_t"},
		{"cust-acme", "_1F"},
	}
	for _, c := range cases {
		key := AccountContactKey(c.customer + "\x1f" + c.contact)
		owner, ok := AccountContactOwner(key)
		if !ok || owner != AccountContactPrefix(c.customer) {
			t.Errorf("%q/%q: key %s has owner %q (%v), want %q", c.customer, c.contact, key, owner, ok, AccountContactPrefix(c.customer))
		}
		for _, other := range cases {
			if other.customer != c.customer && owner == AccountContactPrefix(other.customer) {
				t.Errorf("key %s of %q is taken for %q's", key, c.customer, other.customer)
			}
		}
	}
	if _, ok := AccountContactOwner(AccountKey("acme")); ok {
		t.Error("an account key has no contact owner")
	}
}
