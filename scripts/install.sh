#!/bin/sh
# install.sh: install the nox binary and its shell completion scripts.
# Run by `make install`.
#
# usage: scripts/install.sh path/to/nox BINDIR DATADIR
set -eu

nox=$1 bindir=$2 datadir=$3
install -d "$bindir" "$datadir/bash-completion/completions" \
	"$datadir/zsh/site-functions" "$datadir/fish/vendor_completions.d"
install -m 0755 "$nox" "$bindir/nox"
"$bindir/nox" completion bash >"$datadir/bash-completion/completions/nox"
"$bindir/nox" completion zsh >"$datadir/zsh/site-functions/_nox"
"$bindir/nox" completion fish >"$datadir/fish/vendor_completions.d/nox.fish"
echo "installed $bindir/nox (completions under $datadir)"
case ":${PATH:-}:" in
*":$bindir:"*) ;;
*) echo "note: $bindir is not on your PATH; add it, e.g.: export PATH=\"$bindir:\$PATH\"" ;;
esac
