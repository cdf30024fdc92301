package dsar_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/dsar"
)

type benchRecord struct {
	Source string         `json:"source"`
	ID     string         `json:"id"`
	Time   time.Time      `json:"time"`
	Data   map[string]any `json:"data"`
}

// BenchmarkWrite streams a customer of n records. Nothing is kept per
// record: B/op divided by n stays the same from 1 000 to 100 000 records
// (docs/privacy.md gives the figures).
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			r := benchRecord{Source: "shop", ID: "order-123456", Time: time.Now(), Data: map[string]any{"order_id": "o-1", "amount": 12.5}}
			sec := dsar.Section{Name: "touchpoints", Fill: func(ctx context.Context, emit func(any) error) error {
				for i := 0; i < n; i++ {
					if err := emit(&r); err != nil {
						return err
					}
				}
				return nil
			}}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := dsar.Write(context.Background(), io.Discard, "c", time.Now(), sec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
		})
	}
}
