package projector_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// BenchmarkStateWrites compares three ways to write a checkpoint's states
// with compare-and-set, in one run, alternated, three rounds
// (JOURNEY_BENCH_ROUNDS), each on a fresh bucket of the test's broker:
// 100 000 writes of 1 200 bytes over 10 000 keys, each expecting the
// key's last revision.
//
//   - async: what kvStore.Put does, PublishMsgAsync with
//     Nats-Expected-Last-Subject-Sequence, 4 096 in flight, one ack each;
//   - atomic: orbit.go/jetstreamext PublishMsgBatch, atomic batches of
//     1 000 (the server's limit) one after another, one ack per batch;
//   - atomic×4: the same batches, four at a time.
//
// It reports the median writes/s of each. b.N is ignored.
func BenchmarkStateWrites(b *testing.B) {
	rounds := envInt("JOURNEY_BENCH_ROUNDS", 3)
	ways := []struct {
		name  string
		write func(b *testing.B, js jetstream.JetStream, subject string, keys, n int) time.Duration
	}{
		{"async", writeAsync},
		{"atomic", func(b *testing.B, js jetstream.JetStream, subject string, keys, n int) time.Duration {
			return writeAtomic(b, js, subject, keys, n, 1)
		}},
		{"atomic×4", func(b *testing.B, js jetstream.JetStream, subject string, keys, n int) time.Duration {
			return writeAtomic(b, js, subject, keys, n, 4)
		}},
	}
	br := freshStreams(b)
	js, err := jetstream.New(br.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	const keys, n = 10_000, 100_000
	got := map[string][]float64{}
	for r := range rounds {
		for _, w := range ways {
			subject := atomicBucket(b, js)
			took := w.write(b, js, subject, keys, n)
			rate := float64(n) / took.Seconds()
			got[w.name] = append(got[w.name], rate)
			b.Logf("round %d %s: %.0f writes/s", r+1, w.name, rate)
		}
	}
	for _, w := range ways {
		v := slices.Clone(got[w.name])
		slices.Sort(v)
		b.Logf("median %s: %.0f writes/s %v", w.name, v[len(v)/2], got[w.name])
		b.ReportMetric(v[len(v)/2], w.name+"-writes/s")
	}
}

// atomicBucket is a fresh bucket that allows atomic batches; it returns
// its key subject prefix.
func atomicBucket(b *testing.B, js jetstream.JetStream) string {
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: randName("sw_"), History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), kv.Bucket()) })
	st, err := js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		b.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowAtomicPublish = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	return "$KV." + kv.Bucket() + "."
}

var stateValue = make([]byte, 1200)

func writeAsync(b *testing.B, js jetstream.JetStream, subject string, keys, n int) time.Duration {
	return writeAsyncWindow(b, js, subject, keys, n, 4096)
}

// writeAsyncWindow writes n states of 1 200 bytes over keys keys with
// compare-and-set, window asynchronous publishes in flight, and returns
// how long that took.
func writeAsyncWindow(b *testing.B, js jetstream.JetStream, subject string, keys, n, window int) time.Duration {
	revs := make([]uint64, keys)
	t0 := time.Now()
	for start := 0; start < n; start += window {
		futures := make([]jetstream.PubAckFuture, 0, window)
		idx := make([]int, 0, window)
		for i := start; i < min(start+window, n); i++ {
			k := (i * 7919) % keys
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject + "c" + strconv.Itoa(k), Data: stateValue},
				jetstream.WithExpectLastSequencePerSubject(revs[k]))
			if err != nil {
				b.Fatal(err)
			}
			futures, idx = append(futures, f), append(idx, k)
		}
		for j, f := range futures {
			select {
			case ack := <-f.Ok():
				revs[idx[j]] = ack.Sequence
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
	return time.Since(t0)
}

// writeAtomic writes in atomic batches of 1 000, par at a time. A window
// of 4 000 writes has distinct keys (7919 is prime to 10 000), so the
// batches in flight never expect each other's revisions.
func writeAtomic(b *testing.B, js jetstream.JetStream, subject string, keys, n, par int) time.Duration {
	const batch = 1000
	revs := make([]uint64, keys)
	t0 := time.Now()
	for start := 0; start < n; start += batch * par {
		var wg sync.WaitGroup
		errs := make([]error, par)
		for p := range par {
			from := start + p*batch
			if from >= n {
				break
			}
			to := min(from+batch, n)
			msgs := make([]*nats.Msg, 0, to-from)
			ks := make([]int, 0, to-from)
			for i := from; i < to; i++ {
				k := (i * 7919) % keys
				m := nats.NewMsg(subject + "c" + strconv.Itoa(k))
				m.Data = stateValue
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(revs[k], 10))
				msgs, ks = append(msgs, m), append(ks, k)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ack, err := jetstreamext.PublishMsgBatch(context.Background(), js, msgs)
				if err != nil {
					errs[p] = err
					return
				}
				first := ack.Sequence - uint64(len(msgs)) + 1
				for j, k := range ks {
					revs[k] = first + uint64(j)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	return time.Since(t0)
}
