package projection_test

import (
	"testing"

	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/projection/storetest"
)

// The in-memory store the projection tests use keeps the same contract as
// the projector's JetStream store (services/projector runs the suite too).
func TestMemStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) projection.Store { return newMemStore() })
}
