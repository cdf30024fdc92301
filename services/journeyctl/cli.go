package journeyctl

// CLI is journeyctl's root command. Add a command by adding a field here
// and its type in a file of its own.
type CLI struct {
	Globals

	Status      StatusCmd      `cmd:"" help:"Streams, consumers, lag per partition with an ETA, dead letters by class, last rebuild/re-derive."`
	Deadletters DeadlettersCmd `cmd:"" help:"List, show, redrive or purge dead letters."`
	Replay      ReplayCmd      `cmd:"" help:"Replay a slice of the touchpoint stream to a subject prefix, the warehouse or the projector."`
	Erase       EraseCmd       `cmd:"" help:"Erase customers from every store (right to be forgotten), with a receipt."`
	Export      ExportCmd      `cmd:"" help:"Everything journey keeps on one customer, as one JSON document (the right of access)."`
	Rederive    RederiveCmd    `cmd:"" help:"Project a new rules version into shadow state, diff it, switch to it, roll back."`
	Retention   RetentionCmd   `cmd:"" help:"Expire touchpoints, survey answers and dead letters past their retention (JOURNEY_RETENTION_*)."`
	Rebuild     RebuildCmd     `cmd:"" help:"Rebuild events into shadow tables while live writes go on; verify, swap, roll back."`
	Jobs        JobsCmd        `cmd:"" help:"Run (work) or list the ops actions asked for through the API (POST /v1/ops/jobs)."`
}

// Globals are the flags every command takes. The connection flags override
// the JOURNEY_* configuration read from the environment.
type Globals struct {
	JSON           bool   `help:"Machine output: one JSON document on stdout."`
	Actor          string `help:"Who runs this, for the audit trail (default: the OS user)."`
	NATSURL        string `name:"nats-url" help:"Overrides JOURNEY_NATS_URL."`
	ClickHouseAddr string `name:"clickhouse-addr" help:"Overrides JOURNEY_CLICKHOUSE_ADDR."`
	ClickHouseDB   string `name:"clickhouse-database" help:"Overrides JOURNEY_CLICKHOUSE_DATABASE."`
}
