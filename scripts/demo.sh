#!/bin/sh
# demo.sh: a short tour of nox against the local backend (--local: a
# daemon the first command starts), in a temporary data directory, whose
# daemon it stops at the end. Run by `make run`.
#
# usage: scripts/demo.sh [path/to/nox]
set -eu

NOX=${1:-bin/nox}
work=$(mktemp -d "${TMPDIR:-/tmp}/nox-demo.XXXXXX")
# Searchable by the sandboxes' uids, which need to reach the data dir when
# the backend runs without namespaces (mktemp makes it 0700).
chmod 711 "$work"
trap '"$NOX" --data-dir "$work/data" daemon stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
data="$work/data"
isolation=auto

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	bold=$(printf '\033[1m') red=$(printf '\033[31m') off=$(printf '\033[0m')
else
	bold='' red='' off=''
fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
# nox runs the CLI against the local backend, showing the command.
nox() {
	shown=''
	for arg in "$@"; do
		case $arg in
		*[!A-Za-z0-9_./=:-]* | '') arg="'$arg'" ;;
		esac
		shown="$shown $arg"
	done
	printf '%s$ nox%s%s\n' "$bold" "$shown" "$off"
	"$NOX" --local --data-dir "$data" --isolation "$isolation" "$@"
}

step "$("$NOX" version) with the local backend (data dir $data)"
if ! "$NOX" --local --data-dir "$data" --isolation auto info >"$work/info.txt" 2>"$work/err.txt"; then
	cat "$work/err.txt" >&2
	cat >&2 <<MSG
${red}
########################################################################
#  This host cannot isolate sandboxes (no usable user namespaces or
#  landlock), so the local backend refused to start with --isolation auto.
#  FOR THIS DEMO ONLY, nox retries with --isolation none-unsafe: the
#  demo's commands run directly on this host, as $(id -un 2>/dev/null || echo you).
#  The demo runs only its own harmless script. Never use none-unsafe
#  for code you do not trust.
########################################################################
${off}
MSG
	isolation=none-unsafe
fi
nox info

step "Create a sandbox and wait until it runs commands"
nox create demo --ttl 300 --wait

step "Write a small script locally and upload it"
mkdir -p "$work/src"
cat >"$work/src/hello.sh" <<'SCRIPT'
#!/bin/sh
echo "hello from $(pwd) on $(uname -sr)"
i=0
while [ "$i" -lt 3 ]; do
	i=$((i + 1))
	echo "step $i"
done
echo "the answer is $((6 * 7))" >result.txt
if command -v python3 >/dev/null 2>&1; then
	python3 -c 'import sys; print("python", sys.version.split()[0], "is here too")'
fi
SCRIPT
nox upload demo "$work/src/hello.sh"

step "Run it (output streams as it is produced)"
nox exec demo -- sh hello.sh

step "Shell one-liners work with nox sh; exit codes pass through"
nox sh demo 'ls -l && cat result.txt'
set +e
nox sh demo 'echo failing on purpose >&2; exit 3'
rc=$?
set -e
echo "(nox exited with $rc)"

step "Download the workspace and extract it locally"
nox download demo --extract "$work/out"
ls -l "$work/out"
cat "$work/out/result.txt"

step "Delete the sandbox"
nox delete demo
printf '\n%sdemo done.%s Next: put nox on your PATH (make install PREFIX=~/.local, or go install github.com/noxrunner/nox/cmd/nox@latest), then nox --help, nox shell ID, nox serve, nox conformance.\n' "$bold" "$off"
