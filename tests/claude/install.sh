#!/usr/bin/env bash
# Install a pinned @anthropic-ai/claude-code into a private prefix (no global install).
#
#   tests/claude/install.sh VERSION DEST
#   e.g. tests/claude/install.sh 2.1.197 target/claude-code/2.1.197
#
# Idempotent: does nothing if DEST already holds that version and its binary runs.
# On success prints the absolute path of the executable to use as CLAUDE_BIN:
#   DEST/node_modules/.bin/claude  (-> ../@anthropic-ai/claude-code/bin/claude.exe, a native
#   ELF that postinstall hard-links from @anthropic-ai/claude-code-linux-x64; no download).
# Versions whose package.json asks for a newer Node (2.1.330 wants >=22) install with an
# EBADENGINE warning and run fine: the native binary does not use the system Node.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 VERSION DEST" >&2
    exit 2
fi
version=$1
dest=$2
pkg=@anthropic-ai/claude-code

mkdir -p "$dest"
dest=$(cd "$dest" && pwd -P)
bin=$dest/node_modules/.bin/claude
pkgjson=$dest/node_modules/$pkg/package.json

installed_version() {
    [ -f "$pkgjson" ] || return 1
    sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkgjson" | head -n 1
}

if [ "$(installed_version || true)" = "$version" ] && [ -x "$bin" ] \
    && "$bin" --version </dev/null >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

# A private package.json keeps npm from walking up to some parent project.
if [ ! -f "$dest/package.json" ]; then
    printf '{"name":"claude-code-pin","private":true}\n' >"$dest/package.json"
fi
(
    cd "$dest"
    npm install --no-save --no-audit --no-fund --loglevel=error \
        --prefix "$dest" "$pkg@$version" </dev/null >&2
)

got=$(installed_version || true)
if [ "$got" != "$version" ]; then
    echo "install.sh: expected $pkg@$version in $dest, found '${got:-nothing}'" >&2
    exit 1
fi
if ! out=$("$bin" --version </dev/null 2>&1); then
    echo "install.sh: $bin --version failed: $out" >&2
    exit 1
fi
echo "$bin"
