package warehouse

// BackfillIdentities exposes migration 12's Go step to the external tests.
var BackfillIdentities = backfillIdentities
