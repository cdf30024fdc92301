# Shared by deploy/local/test.sh and deploy/local/run.sh (sourced, not run).

# Go and clickhouse-server live outside a plain user's PATH on Debian.
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

log() { printf '==> %s\n' "$*" >&2; }

# have_clickhouse: a clickhouse-server binary (or the single clickhouse
# binary with the server mode) is installed.
have_clickhouse() { command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1; }

# can_apt: Debian or Ubuntu, as root, with apt-get.
can_apt() { [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

APT_UPDATED=
# apt_install PKG...: install Debian packages, running apt-get update once.
apt_install() {
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	# The packages' init scripts must not start a system server on port
	# 9000: the project runs its own on free ports. policy-rc.d (exit 101)
	# is Debian's switch for that; it is removed again afterwards.
	local policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
	[ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
	return $rc
}

# ensure_clickhouse: install clickhouse-server and clickhouse-client when
# missing and possible; return 1 with the reason otherwise.
ensure_clickhouse() {
	if have_clickhouse; then
		command -v clickhouse-client >/dev/null 2>&1 || { can_apt && apt_install clickhouse-client || true; }
		return 0
	fi
	if can_apt; then
		apt_install clickhouse-server clickhouse-client
		have_clickhouse && return 0
	fi
	cat >&2 <<'MSG'
clickhouse-server is not installed, and this is not Debian/Ubuntu as root, so it
cannot be installed automatically. Either
  - install it: https://clickhouse.com/docs/en/install (or `apt-get install
    clickhouse-server clickhouse-client` on Debian/Ubuntu), or
  - point journey at a running server: JOURNEY_CLICKHOUSE_ADDR=host:9000 make run
    (for the tests: JOURNEY_TEST_CLICKHOUSE_ADDR=host:9000 make test).
MSG
	return 1
}
