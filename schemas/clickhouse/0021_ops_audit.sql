-- The ops audit trail (docs/operations.md): one row per journeyctl action that reads
-- personal data or changes anything, naming the actor (a token's name or "os:<user>"),
-- the action, the selection and the counts (both JSON). event_id is the id of the
-- io.klantreis.ops.<action>.v1 CloudEvent published on the OPS stream for the same action.
CREATE TABLE IF NOT EXISTS {{table "ops_audit"}} (
    at          DateTime('UTC'),
    event_id    String,
    actor       String,
    action      {{.LC}},
    selection   String,
    counts      String,
    outcome     {{.LC}},
    error       String
) ENGINE = {{engine "ops_audit" "MergeTree"}}
PARTITION BY toYYYYMM(at)
ORDER BY (action, at)
;
-- What became of a dead letter: redriven (re-published to TOUCHPOINTS, and the message
-- removed from DEADLETTER) or purged (removed, with the operator's reason). events_dead
-- keeps its rows as the history; a dead letter is open while it has no resolution.
CREATE TABLE IF NOT EXISTS {{table "deadletter_resolutions"}} (
    at            DateTime('UTC'),
    consumer      {{.LC}},
    stream_seq    UInt64,
    dead_seq      UInt64,
    source        String,
    id            String,
    resolution    {{.LC}},
    reason        String,
    actor         String
) ENGINE = {{engine "deadletter_resolutions" "MergeTree"}}
PARTITION BY toYYYYMM(at)
ORDER BY (consumer, stream_seq, at)
