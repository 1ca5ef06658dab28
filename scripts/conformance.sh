#!/bin/sh
# conformance.sh: start `nox serve` on a free loopback port with a
# temporary data directory, a random bearer token and limits low enough
# for every check to run (the 413 and 503 checks) and high enough for the
# 64 MiB file of fs/large-file, wait for /healthz, run
# `nox conformance` against it, stop the server, and exit with the
# conformance exit code. Run by `make conformance`, which certifies the
# whole suite (--certify --profile all: a skipped check fails).
#
# usage: scripts/conformance.sh [path/to/nox] [nox conformance flags...]
# NOX_SERVE_FLAGS adds flags to nox serve, e.g. --isolation=none-unsafe.
#
# The network.egress checks need a destination the sandboxes may reach.
# When run as root with NOXWORLD naming the noxworld program (make
# conformance builds it), the script starts a stand-in internet in a
# network namespace of its own (hosts allowed.test and denied.test, a DNS
# server), points nox serve's egress at it (--egress-netns,
# --egress-resolver) and gives the suite --egress-target
# http://allowed.test/: nothing leaves this machine. Otherwise set
# NOX_EGRESS_TARGET to a URL the sandboxes may reach, or the two checks
# that need one are skipped (which fails a certified run).
set -eu

NOX=${1:-bin/nox}
[ $# -gt 0 ] && shift
work=$(mktemp -d "${TMPDIR:-/tmp}/nox-conformance.XXXXXX")
# Searchable by the sandboxes' uids, which need to reach the data dir when
# the backend runs without namespaces (mktemp makes it 0700).
chmod 711 "$work"
pid=''
wpid=''
cleanup() {
	for p in $pid $wpid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

serve_flags=${NOX_SERVE_FLAGS:-}
target=${NOX_EGRESS_TARGET:-}
if [ -z "$target" ] && [ -n "${NOXWORLD:-}" ] && [ "$(id -u)" = 0 ]; then
	"$NOXWORLD" -hosts allowed.test,denied.test >"$work/world.txt" 2>"$work/world.log" </dev/null &
	wpid=$!
	tries=0
	until grep -q '^dns ' "$work/world.txt" 2>/dev/null; do
		if ! kill -0 "$wpid" 2>/dev/null || [ "$tries" -gt 100 ]; then
			echo "conformance: noxworld did not start:" >&2
			cat "$work/world.log" >&2
			exit 1
		fi
		tries=$((tries + 1))
		sleep 0.1
	done
	netns=$(sed -n 's/^netns //p' "$work/world.txt")
	dns=$(sed -n 's/^dns //p' "$work/world.txt")
	serve_flags="$serve_flags --egress-netns $netns --egress-resolver $dns"
	target=http://allowed.test/
fi

token=conformance-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
NOXRUNNER_TOKEN=$token
export NOXRUNNER_TOKEN
# shellcheck disable=SC2086 # serve_flags is a list of flags
"$NOX" --data-dir "$work/data" serve --listen 127.0.0.1:0 --token "$token" \
	--max-upload-bytes 67108864 --max-concurrent-execs 8 \
	$serve_flags >"$work/banner.txt" 2>"$work/serve.log" &
pid=$!

url=''
tries=0
while :; do
	url=$(sed -n 's/^ *listening on *//p' "$work/banner.txt" 2>/dev/null)
	if [ -n "$url" ] && "$NOX" --base-url "$url" --request-timeout 2s health >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "conformance: nox serve exited before it was healthy:" >&2
		cat "$work/banner.txt" "$work/serve.log" >&2
		echo "(on a host without isolation, try: make conformance NOX_SERVE_FLAGS=--isolation=none-unsafe)" >&2
		exit 1
	fi
	tries=$((tries + 1))
	if [ "$tries" -gt 300 ]; then
		echo "conformance: nox serve not healthy after 30s" >&2
		cat "$work/serve.log" >&2
		exit 1
	fi
	sleep 0.1
done
sed 's/^/serve: /' "$work/banner.txt"

rc=0
if [ -n "$target" ]; then
	set -- --egress-target "$target" "$@"
fi
"$NOX" conformance --base-url "$url" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "conformance: failed (exit $rc); server log:" >&2
	tail -n 50 "$work/serve.log" >&2
fi
exit "$rc"
