package projection_test

import (
	"encoding/json"

	"github.com/klantreis/journey/pkg/projection"
)

// getJSON is the read of the in-memory stores: they keep JSON (as the KV
// store does) with a revision per key, and a key they do not hold is
// projection.ErrNotFound. The caller holds the store's lock.
func getJSON[T any](stored map[string][]byte, revs map[string]uint64, key string) (*T, uint64, error) {
	raw, ok := stored[key]
	if !ok {
		return nil, 0, projection.ErrNotFound
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, 0, err
	}
	return &v, revs[key], nil
}
