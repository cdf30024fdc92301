package projector

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/projection/storetest"
	"github.com/klantreis/journey/pkg/stream"
)

// The projector's JetStream key-value store keeps the projection.Store
// contract (and BatchGetter's), the same suite the in-memory store runs:
// against a real NATS server, a fresh bucket per subtest.
func TestKVStoreConformance(t *testing.T) {
	srv := natstest.Start(t)
	nc, js, err := stream.Connect(stream.Conn{URL: srv.ClientURL(), RequestTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) projection.Store {
		bucket := fmt.Sprintf("conformance_%d", n.Add(1))
		kv, err := openBucket(context.Background(), js, bucket, "projection.Store conformance", 1)
		if err != nil {
			t.Fatal(err)
		}
		return &kvStore{js: js, kv: kv, subject: stream.KVKeyPrefix(bucket), direct: stream.KVDirectGet(bucket),
			timeout: 10 * time.Second, maxValue: maxStateBytes(0, nc)}
	})
}
