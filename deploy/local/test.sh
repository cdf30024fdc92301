#!/usr/bin/env bash
# make test: the one test command of the README and of CI (.ci/run).
#
# On a clean Debian machine it installs what is missing (ClickHouse, and
# Chromium for the dashboard test), starts ONE project-local ClickHouse on a
# free port for every package (JOURNEY_TEST_CLICKHOUSE_ADDR), runs go vet,
# gofmt, a short run of every fuzz target, then go test (with -race except
# for the packages in NORACE), and stops what it started.
#
# Knobs (environment): FUZZTIME (default 40000x: inputs per target, about
# 3-18 s each on 2 cores; a duration such as 10s works too; 0 skips fuzzing),
# NORACE (space-separated package patterns run without -race),
# TEST_TIMEOUT (default 40m), JOURNEY_TEST_CLICKHOUSE_ADDR (use that server),
# PKGS (default ./...: the packages to vet, fuzz and test).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

PKGS=${PKGS:-./...}
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target at
# the end of a -fuzztime duration though it found nothing (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME=${FUZZTIME:-40000x}
TEST_TIMEOUT=${TEST_TIMEOUT:-40m}
# Heavy load and crash tests cost 5-10x under the race detector; they run
# without it so the whole command stays near 15 minutes on 2 cores.
NORACE=${NORACE:-"github.com/klantreis/journey/services/writer github.com/klantreis/journey/services/projector"}

command -v go >/dev/null 2>&1 || { echo "go is not installed (want Go 1.26 at /usr/local/go)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/journey-test.XXXXXX")
CHPID=
cleanup() {
	if [ -n "$CHPID" ]; then
		kill -TERM "$CHPID" 2>/dev/null || true
		wait "$CHPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. What the tests need.
missing=
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing=1
if [ -n "$missing" ]; then
	if can_apt; then apt_install chromium || log "chromium could not be installed; the dashboard browser test will say so"; else log "chromium is missing; the dashboard browser test will say so"; fi
fi
# ZooKeeper (with java) for the replicated ClickHouse test (internal/chcluster).
if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
	if can_apt; then apt_install zookeeper || log "zookeeper could not be installed; the replicated ClickHouse test will say so"; else log "zookeeper is missing; the replicated ClickHouse test will say so"; fi
fi

# 2. One ClickHouse for all packages.
if [ -z "${JOURNEY_TEST_CLICKHOUSE_ADDR:-}" ]; then
	if ensure_clickhouse; then
		log "starting a local clickhouse-server"
		go build -o "$WORK/clickhouse-local" ./deploy/local/clickhouse
		"$WORK/clickhouse-local" -dir "$WORK/clickhouse" -addr-file "$WORK/clickhouse.addr" >"$WORK/clickhouse.out" 2>&1 &
		CHPID=$!
		for _ in $(seq 1 300); do
			[ -s "$WORK/clickhouse.addr" ] && break
			if ! kill -0 "$CHPID" 2>/dev/null; then
				cat "$WORK/clickhouse.out" >&2
				tail -n 30 "$WORK/clickhouse/log/err.log" 2>/dev/null >&2 || true
				echo "clickhouse-server did not start" >&2
				exit 1
			fi
			sleep 0.5
		done
		[ -s "$WORK/clickhouse.addr" ] || { echo "clickhouse-server did not start within 150s" >&2; exit 1; }
		JOURNEY_TEST_CLICKHOUSE_ADDR=$(cat "$WORK/clickhouse.addr")
		export JOURNEY_TEST_CLICKHOUSE_ADDR
		log "ClickHouse for the tests at $JOURNEY_TEST_CLICKHOUSE_ADDR"
	elif [ -n "${CI:-}" ]; then
		echo "CI needs ClickHouse" >&2
		exit 1
	else
		log "no ClickHouse: ClickHouse-backed tests will skip and say so"
	fi
fi

# 3. Static checks.
log "go vet $PKGS"
go vet $PKGS
log "gofmt -l ."
unformatted=$(gofmt -l . | grep -v '^\.data/' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change these files:" >&2
	echo "$unformatted" >&2
	exit 1
fi

status=0

# 4. A short run of every fuzz target (go test -fuzz takes one target of one
# package at a time).
if [ "$FUZZTIME" != "0" ]; then
	log "finding fuzz targets"
	go test -list '^Fuzz' $PKGS >"$WORK/fuzz.list"
	targets=()
	pending=()
	while read -r line; do
		case "$line" in
		Fuzz*) pending+=("$line") ;;
		ok*)
			pkg=$(echo "$line" | awk '{print $2}')
			for f in "${pending[@]}"; do targets+=("$pkg $f"); done
			pending=()
			;;
		*) pending=() ;;
		esac
	done <"$WORK/fuzz.list"
	for t in "${targets[@]}"; do
		set -- $t
		log "fuzz $2 in $1 ($FUZZTIME)"
		# A finding fails the command but the tests still run, so that one
		# CI log shows everything.
		fstatus=0
		# -timeout bounds a count-budget run that hangs (a finding too).
		go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" -timeout 5m "$1" 2>&1 | tee "$WORK/fuzz.out" || fstatus=$?
		if [ "$fstatus" != 0 ]; then
			if ! grep -q 'Failing input written to' "$WORK/fuzz.out" && grep -q 'context deadline exceeded' "$WORK/fuzz.out"; then
				# With a duration FUZZTIME, the coordinator race above
				# (golang/go#75804). A finding always writes its input
				# under testdata/fuzz; this wrote none, so it is not one.
				log "fuzz $2 in $1: the -fuzztime deadline race of Go's fuzz coordinator (golang/go#75804), no failing input; not a finding"
			else
				status=1
				log "FAIL: fuzz $2 in $1 found a failing input (see above)"
			fi
		fi
	done
fi

# 5. The tests; go test's own summary is the last thing printed.
pkgs=$(go list $PKGS)
race=()
norace=()
for p in $pkgs; do
	skip=
	for n in $NORACE; do
		case "$p" in $n | $n/*) skip=1 ;; esac
	done
	if [ -n "$skip" ]; then norace+=("$p"); else race+=("$p"); fi
done
if [ ${#norace[@]} -gt 0 ]; then
	log "go test (without -race): ${norace[*]}"
	go test -timeout "$TEST_TIMEOUT" "${norace[@]}" || status=$?
fi
log "go test -race (the rest)"
go test -race -timeout "$TEST_TIMEOUT" "${race[@]}" || status=$?
exit $status
