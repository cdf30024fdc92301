package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/klantreis/journey/pkg/tlsconfig"
)

// Config connects to ClickHouse (JOURNEY_CLICKHOUSE_*).
type Config struct {
	// Addr is host:port of the native protocol, comma-separated for several.
	Addr     string `envconfig:"ADDR" default:"127.0.0.1:9000"`
	Database string `envconfig:"DATABASE" default:"journey"`
	User     string `envconfig:"USER" default:"default"`
	Password string `envconfig:"PASSWORD"`
	// DialTimeout bounds a connection attempt (default 5s).
	DialTimeout time.Duration `envconfig:"DIAL_TIMEOUT" default:"5s"`
	// MaxOpenConns bounds the pool (default 8).
	MaxOpenConns int `envconfig:"MAX_OPEN_CONNS" default:"8"`
	// TLS to the server's secure native port (tcp_port_secure, usually
	// 9440) (JOURNEY_CLICKHOUSE_TLS_*); off by default.
	TLS tlsconfig.Client `envconfig:"TLS"`
	// Cluster, if set, is the <remote_servers> cluster of a replicated
	// ClickHouse (docs/scaling.md): every table is created as a
	// Replicated*MergeTree NAME_local on each node of Addr plus a
	// Distributed NAME for reads, and inserts go to the local tables.
	// Empty (the default): one server, plain MergeTree tables.
	Cluster string `envconfig:"CLUSTER"`
	// InsertQuorum is insert_quorum on a cluster (default 2): an INSERT
	// succeeds once that many replicas hold it, so a writer that fails
	// over to another replica finds its own rows there. While fewer
	// replicas are up, inserts fail and the writer retries. 0 or 1 turns
	// it off. Ignored without Cluster.
	InsertQuorum int `envconfig:"INSERT_QUORUM" default:"2"`
}

// Features is what the connected server supports.
type Features struct {
	Major, Minor int
	// DateTime64 is true from 20.1: millisecond times in one column.
	DateTime64 bool
	// LowCardinality is true from 19.x without the experimental flag.
	LowCardinality bool
	// TTLWhere is true from 21.1: a table TTL with a WHERE clause, which
	// retention per kind needs (older servers drop partitions and delete
	// by mutation instead; see [DB.ApplyRetention]).
	TTLWhere bool
}

// Version renders the detected version.
func (f Features) Version() string { return strconv.Itoa(f.Major) + "." + strconv.Itoa(f.Minor) }

// DetectFeatures parses a version() string such as "18.16.1" or "24.8.4.13".
func DetectFeatures(version string) (Features, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return Features{}, fmt.Errorf("warehouse: unparsable server version %q", version)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Features{}, fmt.Errorf("warehouse: unparsable server version %q", version)
	}
	f := Features{Major: major, Minor: minor}
	f.DateTime64 = major >= 20
	f.LowCardinality = major >= 20
	f.TTLWhere = major >= 21
	return f, nil
}

// DB is an open connection pool to journey's database.
type DB struct {
	// Conn is the clickhouse-go connection, for the package's table code.
	Conn     driver.Conn
	Features Features
	cfg      Config
	// eventCols pools InsertEvents' column slices (*eventColumns).
	eventCols sync.Pool
}

// ErrConfig marks a bad setting.
var ErrConfig = errors.New("warehouse: bad config")

// Open connects, creates the database if needed and detects the server's
// features. It fails if the server cannot be reached within DialTimeout;
// callers that must outlive ClickHouse retry it.
func Open(ctx context.Context, c Config) (*DB, error) {
	if c.Addr == "" {
		return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_ADDR is empty", ErrConfig)
	}
	if _, err := Addrs(c.Addr); err != nil {
		return nil, err
	}
	if !validIdent(c.Database) {
		return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_DATABASE must be letters, digits and _, got %q", ErrConfig, c.Database)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 8
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.Cluster != "" && !validIdent(c.Cluster) {
		return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_CLUSTER must be letters, digits and _, got %q", ErrConfig, c.Cluster)
	}
	if c.InsertQuorum < 0 {
		return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_INSERT_QUORUM must be >= 0, got %d", ErrConfig, c.InsertQuorum)
	}
	// Create the database through a connection without a default database.
	// Through the system database: a user limited to journey's database
	// may not use default, and system is readable by every user.
	boot, err := connect(c, "system")
	if err != nil {
		return nil, err
	}
	var version string
	if err := boot.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		boot.Close()
		return nil, fmt.Errorf("warehouse: %s: %w", c.Addr, err)
	}
	// Only a missing database is created: a user without DDL rights (the
	// api's readonly one) opens an existing database.
	var exists uint64
	if err := boot.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", c.Database).Scan(&exists); err != nil {
		boot.Close()
		return nil, fmt.Errorf("warehouse: %s: %w", c.Addr, err)
	}
	if exists == 0 {
		if err := boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.Database); err != nil {
			boot.Close()
			return nil, fmt.Errorf("warehouse: create database %s (as %s; a user without DDL rights needs an admin to create it): %w", c.Database, c.User, err)
		}
	}
	boot.Close()
	f, err := DetectFeatures(version)
	if err != nil {
		return nil, err
	}
	conn, err := connect(c, c.Database)
	if err != nil {
		return nil, err
	}
	return &DB{Conn: conn, Features: f, cfg: c}, nil
}

func connect(c Config, database string) (driver.Conn, error) {
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: JOURNEY_CLICKHOUSE_TLS_*: %w", ErrConfig, err)
	}
	addrs, err := Addrs(c.Addr)
	if err != nil {
		return nil, err
	}
	var settings clickhouse.Settings
	if c.Cluster != "" && c.InsertQuorum > 1 {
		settings = clickhouse.Settings{"insert_quorum": c.InsertQuorum}
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Settings:         settings,
		TLS:              tc,
		Addr:             addrs,
		Auth:             clickhouse.Auth{Database: database, Username: c.User, Password: c.Password},
		DialTimeout:      c.DialTimeout,
		MaxOpenConns:     c.MaxOpenConns,
		MaxIdleConns:     c.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("warehouse: open %s: %w", c.Addr, err)
	}
	return conn, nil
}

// Database is the database name in use.
func (db *DB) Database() string { return db.cfg.Database }

// Ping checks the server answers (readiness).
func (db *DB) Ping(ctx context.Context) error { return db.Conn.Ping(ctx) }

// Close closes the pool.
func (db *DB) Close() error { return db.Conn.Close() }

func validIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
