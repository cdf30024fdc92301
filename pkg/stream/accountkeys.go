package stream

import "strings"

// The keys of the account projection's bucket (JOURNEY_PROJECTOR_ACCOUNTS_BUCKET).
// The projector writes the first two; an erasure (pkg/privacy) changes
// them and writes the third, which the projector watches.
const (
	accountKeyPrefix        = "a."
	accountContactKeyPrefix = "c."
	accountRefreshKeyPrefix = "r."
)

// AccountKey is the key of an account's record: "a.<account key>".
func AccountKey(accountID string) string { return accountKeyPrefix + CustomerKey(accountID) }

// AccountContactKey is the key of a contact's directory entry,
// "c.<key of the contact key>" (contactKey is account.ContactKey: customer
// id, unit separator, contact id).
func AccountContactKey(contactKey string) string {
	return accountContactKeyPrefix + CustomerKey(contactKey)
}

// AccountContactsFilter selects every contact entry of the bucket; a
// customer's are the ones whose [AccountContactOwner] is the customer's
// [AccountContactPrefix] (a key is one token, so no subject filter
// selects one customer's).
const AccountContactsFilter = accountContactKeyPrefix + "*"

// AccountContactPrefix is how every contact entry key of customerID
// starts.
func AccountContactPrefix(customerID string) string {
	return accountContactKeyPrefix + CustomerKey(customerID+"\x1f")
}

// AccountContactOwner returns the [AccountContactPrefix] of the customer
// whose contact entry key is. [CustomerKey] escapes byte by byte, '_'
// included (_5F), and a customer id holds no control character, so the
// first "_1F" is the unit separator.
func AccountContactOwner(key string) (string, bool) {
	if !strings.HasPrefix(key, accountContactKeyPrefix) {
		return "", false
	}
	i := strings.Index(key, "_1F")
	if i < 0 {
		return "", false
	}
	return key[:i+3], true
}

// AccountRefreshKey is the key by which an erasure asks the projector to
// write an account's rows again: "r.<account key>", whose value is the
// account id.
func AccountRefreshKey(accountID string) string {
	return accountRefreshKeyPrefix + CustomerKey(accountID)
}

// AccountRefreshFilter selects every refresh request.
const AccountRefreshFilter = accountRefreshKeyPrefix + "*"
