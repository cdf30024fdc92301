# journey: `make run` starts the whole system locally, `make test` tests it.
# See README.md.

.PHONY: run test build vet fmt clean-data

# The whole system in one process: embedded NATS, a local ClickHouse (or
# JOURNEY_CLICKHOUSE_ADDR), every service and the simulator. Ctrl-C stops it.
run:
	@bash deploy/local/run.sh

# vet, gofmt, fuzz briefly, go test (race where it fits); installs and starts
# what it needs and stops it again. CI runs exactly this (.ci/run).
test:
	@bash deploy/local/test.sh

# Every command into ./bin.
build:
	go build -o bin/ ./services/...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Forget the local stack's data (NATS streams and ClickHouse tables).
clean-data:
	rm -rf .data

.PHONY: bench bench-short

# The system benchmark: the real services, NATS and ClickHouse with the
# simulator as load; appends the results to docs/performance-system.md.
# At most about 18.5 minutes plus the build (the rate search makes fewer
# runs rather than overrun); not part of test or CI.
bench:
	@bash deploy/local/bench.sh

# The same in under 3 minutes, with shorter windows (10 s, not 60 s, per
# sustained rate) and one search run.
bench-short:
	@bash deploy/local/bench.sh -short
