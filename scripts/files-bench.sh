#!/bin/sh
# files-bench.sh: the figures of the files API in one run. Starts `nox
# serve` on a free loopback port with a temporary data directory, then
# through the nox CLI (which uses the SDK):
#   1. a 1 MiB random file: nox cp up, nox cp down, compared byte for byte;
#   2. a SIZE_MIB (default 1024) random file: nox cp up (files.ops write,
#      streamed chunked) and down (files.ops read), compared, with the
#      client's peak RSS (GNU time's max RSS) minus that of `nox health`,
#      and the server's peak RSS (VmHWM, reset through clear_refs before
#      each step) minus its RSS before the step;
#   3. the same file as an uncompressed tar uploaded with curl (streamed
#      from disk with a Content-Length) to the same server, timed alike;
#   4. nox fs watch reporting a file created by nox exec.
# Prints one line per step and the throughput ratios.
#
# usage: scripts/files-bench.sh [path/to/nox]   (Linux; needs curl and
# /usr/bin/time). NOX_SERVE_FLAGS adds flags to nox serve.
set -eu

NOX=${1:-bin/nox}
SIZE_MIB=${SIZE_MIB:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/nox-files-bench.XXXXXX")
chmod 711 "$work"
pid=''
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

limit=$(( (SIZE_MIB + 64) * 1048576 ))
# shellcheck disable=SC2086 # NOX_SERVE_FLAGS is a list of flags
"$NOX" --data-dir "$work/data" serve --listen 127.0.0.1:0 \
	--max-upload-bytes "$limit" --max-download-bytes "$limit" \
	${NOX_SERVE_FLAGS:-} >"$work/banner.txt" 2>"$work/serve.log" &
pid=$!
url=''
tries=0
until url=$(sed -n 's/^ *listening on *//p' "$work/banner.txt" 2>/dev/null) &&
	[ -n "$url" ] && "$NOX" --base-url "$url" health >/dev/null 2>&1; do
	kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
	tries=$((tries + 1))
	[ "$tries" -le 300 ] || { echo "files-bench: nox serve not healthy after 30s" >&2; exit 1; }
	sleep 0.1
done
export NOXRUNNER_BASE_URL="$url"
id=bench
"$NOX" create "$id" --ttl 1h --storage "$((SIZE_MIB * 4 + 256))Mi" --wait >/dev/null

kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$pid/status"; }

# step NAME BASE_KIB CMD...: runs CMD (stdout discarded) under GNU time;
# prints seconds, MiB/s of SIZE (bytes, set by the caller) and the RSS
# growth of the client (over BASE_KIB, the same client doing a health
# check) and of the server (over its RSS before the step).
step() {
	name=$1
	client_base=$2
	shift 2
	sync
	echo 5 >"/proc/$pid/clear_refs" # VmHWM := VmRSS
	before=$(kib VmRSS)
	/usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null
	read -r secs client_kib <"$work/time"
	peak=$(kib VmHWM)
	awk -v n="$name" -v s="$secs" -v b="$SIZE" -v c="$client_kib" -v base="$client_base" \
		-v sb="$before" -v sp="$peak" 'BEGIN {
		printf "%-26s %7.2fs %8.1f MiB/s  client RSS +%.1f MiB (peak %.1f)  server RSS +%.1f MiB (peak %.1f)\n",
			n, s, b / 1048576 / (s > 0 ? s : 0.001), (c - base) / 1024, c / 1024, (sp - sb) / 1024, sp / 1024 }'
	echo "$secs" >"$work/secs.$name"
}

/usr/bin/time -f '%e %M' -o "$work/time" "$NOX" health >/dev/null
read -r _ nox_base <"$work/time"
/usr/bin/time -f '%e %M' -o "$work/time" curl -sSf -o /dev/null "$url/healthz"
read -r _ curl_base <"$work/time"
echo "client baselines (a health check): nox $((nox_base / 1024)) MiB, curl $((curl_base / 1024)) MiB; server RSS $(($(kib VmRSS) / 1024)) MiB"

# 1. 1 MiB random, byte-equal.
head -c 1048576 /dev/urandom >"$work/small.bin"
SIZE=1048576
step "1MiB cp up" "$nox_base" "$NOX" cp "$work/small.bin" "$id:small.bin"
step "1MiB cp down" "$nox_base" "$NOX" cp "$id:small.bin" "$work/small.back"
cmp "$work/small.bin" "$work/small.back" && echo "1 MiB round trip: byte-equal"

# 2. SIZE_MIB random through files.ops.
head -c "$((SIZE_MIB * 1048576))" /dev/urandom >"$work/big.bin"
SIZE=$((SIZE_MIB * 1048576))
step "${SIZE_MIB}MiB cp up" "$nox_base" "$NOX" cp "$work/big.bin" "$id:big.bin"
step "${SIZE_MIB}MiB cp down" "$nox_base" "$NOX" cp "$id:big.bin" "$work/big.back"
cmp "$work/big.bin" "$work/big.back" && echo "${SIZE_MIB} MiB round trip: byte-equal"
rm -f "$work/big.back"

# 3. The same file as an uncompressed tar upload (the baseline).
(cd "$work" && tar cf big.tar big.bin)
step "${SIZE_MIB}MiB tar upload (curl)" "$curl_base" curl -sSf -o /dev/null -X POST -H 'Content-Type: application/x-tar' \
	-T "$work/big.tar" "$url/v1/sandboxes/$id/files/upload?dest=/workspace/tarred"

awk -v up="$(cat "$work/secs.${SIZE_MIB}MiB cp up")" -v down="$(cat "$work/secs.${SIZE_MIB}MiB cp down")" \
	-v tar="$(cat "$work/secs.${SIZE_MIB}MiB tar upload (curl)")" 'BEGIN {
	printf "throughput vs tar upload: write %.2fx, read %.2fx, round trip %.2fx (2 transfers in %.2fs vs 2 x %.2fs)\n",
		tar / up, tar / down, 2 * tar / (up + down), up + down, tar }'

# 4. nox fs watch sees a file an exec creates: from starting `nox exec`
# (its own start-up and the command's included) to the event's line.
: >"$work/watch.out"
: >"$work/watch.err"
"$NOX" fs watch "$id" -r >"$work/watch.out" 2>"$work/watch.err" &
wpid=$!
until grep -q '^nox: watching' "$work/watch.err"; do sleep 0.01; done
t0=$(date +%s%N)
"$NOX" exec "$id" -- touch made-by-exec.txt
until grep -q 'made-by-exec.txt' "$work/watch.out"; do sleep 0.002; done
t1=$(date +%s%N)
kill "$wpid"
wait "$wpid" 2>/dev/null || true
echo "watch: \"$(head -n 1 "$work/watch.out")\" $(( (t1 - t0) / 1000000 )) ms after nox exec started"
"$NOX" delete "$id" >/dev/null
