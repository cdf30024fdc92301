package privacy_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

// BenchmarkEraseTables measures the ClickHouse part of an erasure (the
// costly one: a mutation per table, waited for) of 1, 100 and 10 000
// customers in one batch (each checked gone afterwards), on a store of JOURNEY_BENCH_ERASE_EVENTS
// events (default 100 000) over customers of 10 events each. Each
// iteration erases customers not erased before. Figures: docs/privacy.md.
func BenchmarkEraseTables(b *testing.B) {
	db := warehousetest.Open(b)
	ctx := context.Background()
	total := 100_000
	if v := os.Getenv("JOURNEY_BENCH_ERASE_EVENTS"); v != "" {
		_, _ = fmt.Sscan(v, &total)
	}
	const perCustomer = 10
	now := time.Now().UTC()
	rows := make([]warehouse.EventRow, 0, 10_000)
	for i := 0; i < total; i++ {
		c := fmt.Sprintf("c-%d", i/perCustomer)
		e, err := touchpoint.New("bench", fmt.Sprintf("e-%d", i), c, now.Add(-time.Duration(i)*time.Second), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
		if err != nil {
			b.Fatal(err)
		}
		p, err := touchpoint.Validate(&e, now)
		if err != nil {
			b.Fatal(err)
		}
		rows = append(rows, warehouse.NewEventRow(uint64(i+1), &e, &p, now))
		if len(rows) == cap(rows) || i == total-1 {
			if err := db.InsertEvents(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	_, jsc, err := stream.Connect(stream.Conn{URL: natstest.URL(b), RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	stores, err := privacy.Stores(ctx, jsc, db, privacy.Names{})
	if err != nil {
		b.Fatal(err)
	}
	next := 0
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ids := make([]string, n)
				for j := range ids {
					ids[j] = fmt.Sprintf("c-%d", next)
					next++
				}
				for _, st := range stores {
					if !strings.HasPrefix(st.Name(), "table ") {
						continue
					}
					if err := st.Erase(ctx, ids); err != nil {
						b.Fatal(err)
					}
					if left, err := st.Count(ctx, ids); err != nil || left != 0 {
						b.Fatalf("%s: %d records left after erasing (%v)", st.Name(), left, err)
					}
				}
			}
		})
	}
}
