package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// versionStore reads a rules version's projection tables (pkg/ruleset):
// the customer state, its explanation, the lists, the stage distribution,
// the flows, the funnel and the NPS series. Timelines (and anything else
// of the embedded DB) read the events and tables no version changes.
type versionStore struct {
	*warehouse.DB
	v *warehouse.Variant
}

func (s versionStore) Customer(ctx context.Context, id string) (warehouse.CustomerState, error) {
	return s.v.Customer(ctx, id)
}

func (s versionStore) Transitions(ctx context.Context, id string) ([]warehouse.Transition, error) {
	return s.v.Transitions(ctx, id)
}

func (s versionStore) Customers(ctx context.Context, f warehouse.CustomerFilter) ([]warehouse.CustomerState, error) {
	return s.v.Customers(ctx, f)
}

func (s versionStore) StageDistribution(ctx context.Context) ([]warehouse.StageCount, error) {
	return s.v.StageDistribution(ctx)
}

func (s versionStore) StageDistributionAt(ctx context.Context, t time.Time) ([]warehouse.StageCount, error) {
	return s.v.StageDistributionAt(ctx, t)
}

func (s versionStore) StageFlows(ctx context.Context, from, to time.Time) ([]warehouse.StageFlow, error) {
	return s.v.StageFlows(ctx, from, to)
}

func (s versionStore) Funnel(ctx context.Context, from, to time.Time) ([]warehouse.FunnelStep, error) {
	return s.v.Funnel(ctx, from, to)
}

func (s versionStore) NPS(ctx context.Context, from, to time.Time, iv warehouse.Interval, g warehouse.NPSGroup, maxRows int) ([]warehouse.NPSRow, error) {
	return s.v.NPS(ctx, from, to, iv, g, maxRows)
}

// followRules watches the live rules version until ctx ends and points the
// server at its tables on every move. While NATS or the bucket is not
// there it keeps the base version's tables and tries again.
func followRules(ctx context.Context, c stream.Conn, db *warehouse.DB, srv *Server, log *slog.Logger) {
	if c.Name == "" {
		c.Name = "journey-api"
	}
	nc, js, err := stream.Connect(c, log)
	if err != nil {
		log.Error("cannot follow the live rules version; serving the base tables", "err", err)
		return
	}
	defer nc.Close()
	var ops *ruleset.Store
	for tries := 0; ctx.Err() == nil; tries++ {
		if ops, err = ruleset.Bind(ctx, js); err == nil {
			break
		}
		// Once, then every minute: a NATS user without the permission
		// (deploy/nats) would otherwise fill the log.
		if !errors.Is(err, jetstream.ErrBucketNotFound) && tries%30 == 0 {
			log.Warn("live rules version unknown; serving the base tables until NATS answers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	if ops == nil {
		return
	}
	ops.Follow(ctx, log, func(v ruleset.Version, _ string) {
		vt, err := db.Variant(v.TableSuffix())
		if err != nil {
			log.Error("live rules version has unusable tables; keeping the current ones", "version", v.Name, "err", err)
			return
		}
		if v.IsBase() {
			srv.SetStore(db)
		} else {
			srv.SetStore(versionStore{DB: db, v: vt})
		}
		log.Info("api reading rules version", "version", v.Name, "tables", vt.Table("customer_state"))
	})
}
