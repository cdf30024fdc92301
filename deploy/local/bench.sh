#!/usr/bin/env bash
# make bench / make bench-short: the system benchmark (bench/system).
#
# Same set-up as make test: installs clickhouse-server with apt-get when it
# is missing and this is Debian/Ubuntu as root, unless
# JOURNEY_CLICKHOUSE_ADDR points at a running server (otherwise the bench
# starts its own local server on free ports and stops it at the end). NATS
# is embedded. The results are printed and appended, dated, to
# docs/performance-system.md (BENCH_OUT to change), with the soak's chart
# under docs/performance-system/.
#
# Arguments are passed to journey-bench (e.g. -short, -soak 2m, -keep,
# -soak-only 2300 -soak 3m for a look at memory). Not part of make test or
# CI: it takes at most ~18.5 minutes plus the build (-short: under 3) and
# wants the machine to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

command -v go >/dev/null 2>&1 || { echo "go is not installed (want Go 1.26 at /usr/local/go)" >&2; exit 1; }
if [ -z "${JOURNEY_CLICKHOUSE_ADDR:-}" ]; then
	ensure_clickhouse || exit 1
fi
mkdir -p bin
log "building journey-bench"
go build -o bin/journey-bench ./bench/cmd/journey-bench
exec bin/journey-bench -out "${BENCH_OUT:-docs/performance-system.md}" "$@"
