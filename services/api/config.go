package api

import (
	"time"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Config is the API service's configuration (JOURNEY_*).
type Config struct {
	ClickHouse warehouse.Config `envconfig:"CLICKHOUSE"`
	API        Settings         `envconfig:"API"`
	// NATS is read for the ops status (stream and consumer info only, as
	// the NATS user api) and to follow the live rules version
	// (FollowRules); with JOURNEY_API_ERASURE it also runs erasures, which
	// purge streams and buckets: then it must be the admin user.
	NATS stream.Conn `envconfig:"NATS"`
}

// Settings are the API's own settings (JOURNEY_API_*).
type Settings struct {
	// Addr to listen on for the API, the dashboard and /healthz, /readyz,
	// /metrics (default 127.0.0.1:8089).
	Addr string `envconfig:"ADDR" default:"127.0.0.1:8089"`
	// Tokens are the bearer tokens, comma-separated: "token" or
	// "token=read" has read scope, "token=admin" admin scope (which
	// includes read). The dashboard takes a token at /login (it sets a
	// session cookie) or as the password of HTTP Basic auth.
	Tokens []string `envconfig:"TOKENS"`
	// TokensFile holds more tokens, one entry per line as in Tokens
	// (# starts a comment).
	TokensFile string `envconfig:"TOKENS_FILE"`
	// Open serves /v1 and the dashboard without tokens when none are
	// configured (default false: Run refuses to start without a token).
	// For a local run only.
	Open bool `envconfig:"OPEN" default:"false"`
	// TLS serves HTTPS (JOURNEY_API_TLS_*); off by default.
	TLS tlsconfig.Server `envconfig:"TLS"`
	// DefaultPageSize and MaxPageSize bound list and timeline pages
	// (defaults 50 and 500); a larger limit is a 400.
	DefaultPageSize int `envconfig:"DEFAULT_PAGE_SIZE" default:"50"`
	MaxPageSize     int `envconfig:"MAX_PAGE_SIZE" default:"500"`
	// MaxBuckets bounds the periods of a metrics series (default 400, e.g.
	// 400 days); a longer range is a 400.
	MaxBuckets int `envconfig:"MAX_BUCKETS" default:"400"`
	// MaxSeries bounds the groups of a grouped NPS series (default 200);
	// more is a 422 that asks for a narrower range.
	MaxSeries int `envconfig:"MAX_SERIES" default:"200"`
	// QueryTimeout bounds each request's ClickHouse work (default 10s); a
	// request that exceeds it gets a 504.
	QueryTimeout time.Duration `envconfig:"QUERY_TIMEOUT" default:"10s"`
	// ExportTimeout bounds one access export (GET
	// /v1/customers/{id}/export, default 10m), which streams every record
	// of a customer and may take far longer than a query.
	ExportTimeout time.Duration `envconfig:"EXPORT_TIMEOUT" default:"10m"`
	// MaxInFlight bounds concurrent /v1 and dashboard requests (default 64);
	// more are answered 503 at once instead of queueing.
	MaxInFlight int `envconfig:"MAX_IN_FLIGHT" default:"64"`
	// OpsSample is how often the ops status (/v1/ops/status, the /ops page,
	// the journey_ops_* metrics) is sampled from NATS (default 10s); drain
	// rates and ETAs are measured between samples. 0 turns it off and the
	// API does not connect to NATS.
	OpsSample time.Duration `envconfig:"OPS_SAMPLE" default:"10s"`
	// OpsStreams are the streams it reports, with their durable consumers
	// (default the touchpoint, derived, dead-letter and projector outbox
	// streams). The dead-letter stream is counted per consumer instead.
	OpsStreams []string `envconfig:"OPS_STREAMS" default:"TOUCHPOINTS,DERIVED,DEADLETTER,PROJECTOR_OUTBOX"`
	// Drain is how long shutdown waits for requests in flight (default 10s).
	Drain time.Duration `envconfig:"DRAIN" default:"10s"`
	// Erasure enables DELETE /v1/customers/{id} and GET /v1/erasures/{id}
	// (default false: they answer 503 and point to journeyctl erase). It
	// needs admin rights: NATS as JOURNEY_NATS_* (user admin) and ClickHouse
	// as ErasureClickHouseUser, which may run mutations. The projector's
	// stores are assumed to have their default names.
	Erasure bool `envconfig:"ERASURE" default:"false"`
	// OpsActions enables the ops actions of /v1/ops/deadletters (list,
	// show, redrive, purge) and /v1/ops/jobs (replay, rebuild, re-derive,
	// rules switch and rollback, retention, queued for a `journeyctl jobs
	// work` worker); default false: they answer 503 and point to
	// journeyctl. Like Erasure it needs admin rights: NATS as
	// JOURNEY_NATS_* (user admin) and ClickHouse as ErasureClickHouseUser,
	// which may insert into deadletter_resolutions and ops_audit. Every
	// action is audited (pkg/audit) with the token's hash as the actor.
	OpsActions bool `envconfig:"OPS_ACTIONS" default:"false"`
	// ErasureClickHouseUser and ErasureClickHousePassword are the
	// ClickHouse user the erasure and the ops actions run as
	// (JOURNEY_API_ERASURE_CLICKHOUSE_USER, _PASSWORD); empty uses
	// JOURNEY_CLICKHOUSE_USER's.
	ErasureClickHouseUser     string `envconfig:"ERASURE_CLICKHOUSE_USER"`
	ErasureClickHousePassword string `envconfig:"ERASURE_CLICKHOUSE_PASSWORD"`
	// FollowRules makes the API read the projection tables of the live
	// rules version (`journeyctl rederive switch`), which it learns from
	// the JOURNEY_OPS key-value bucket over JOURNEY_NATS_* (default true).
	// Until NATS answers, and with false, it reads the base version's
	// tables.
	FollowRules bool `envconfig:"FOLLOW_RULES" default:"true"`
}

func (s *Settings) defaults() {
	if s.DefaultPageSize <= 0 {
		s.DefaultPageSize = 50
	}
	if s.MaxPageSize <= 0 {
		s.MaxPageSize = 500
	}
	if s.DefaultPageSize > s.MaxPageSize {
		s.DefaultPageSize = s.MaxPageSize
	}
	if s.MaxBuckets <= 0 {
		s.MaxBuckets = 400
	}
	if s.MaxSeries <= 0 {
		s.MaxSeries = 200
	}
	if s.QueryTimeout <= 0 {
		s.QueryTimeout = 10 * time.Second
	}
	if s.ExportTimeout <= 0 {
		s.ExportTimeout = 10 * time.Minute
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 64
	}
	if s.Drain <= 0 {
		s.Drain = 10 * time.Second
	}
}
