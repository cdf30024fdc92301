#!/usr/bin/env bash
# make run: the whole system in one process (services/stack). Installs
# clickhouse-server with apt-get when it is missing and this is Debian/Ubuntu
# as root, unless JOURNEY_CLICKHOUSE_ADDR points at a running server.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

command -v go >/dev/null 2>&1 || { echo "go is not installed (want Go 1.26 at /usr/local/go)" >&2; exit 1; }
if [ -z "${JOURNEY_CLICKHOUSE_ADDR:-}" ]; then
	ensure_clickhouse || exit 1
fi
mkdir -p bin
go build -o bin/journey-stack ./services/stack/cmd/journey-stack
exec bin/journey-stack
