package stack_test

import (
	"testing"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/writer"
)

// TestDefaultAccessNamesAreTheServices: deploy/nats/permissions.conf is
// written for stream.DefaultAccessNames; they must be the services'
// defaults, or the file would allow names no service uses.
func TestDefaultAccessNamesAreTheServices(t *testing.T) {
	var w writer.Config
	defaults(t, &w)
	var p projector.Config
	defaults(t, &p)
	got := stream.DefaultAccessNames()
	want := stream.AccessNames{Partitions: w.Stream.Partitions, WriterConsumer: w.Writer.Consumer, WriterFenceBucket: writer.FenceBucket,
		ProjectorDurable: p.Projector.Durable, StateBucket: p.Projector.Bucket, IndexBucket: p.Projector.IndexBucket,
		OutboxStream: p.Projector.OutboxStream, AccountsBucket: p.Projector.Accounts.Bucket}
	if got != want {
		t.Fatalf("stream.DefaultAccessNames() = %+v, the services' defaults are %+v", got, want)
	}
}
