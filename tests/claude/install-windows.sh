#!/usr/bin/env bash
# Fetch the pinned Windows Claude Code client (npm's @anthropic-ai/claude-code-win32-x64, a
# native claude.exe) into DEST, for running under Wine in the tests.
#
#   tests/claude/install-windows.sh VERSION DEST
#   e.g. tests/claude/install-windows.sh 2.1.197 target/claude-code/win32-2.1.197
#
# Idempotent: does nothing if DEST/claude.exe is there with that version's package.json.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 VERSION DEST" >&2
    exit 2
fi
version=$1
dest=$2
pkg=@anthropic-ai/claude-code-win32-x64
mkdir -p "$dest"
dest=$(cd "$dest" && pwd -P)
if [ -f "$dest/claude.exe" ] && grep -q "\"version\": *\"$version\"" "$dest/package.json" 2>/dev/null; then
    echo "$dest/claude.exe"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
cp "$work/package/claude.exe" "$work/package/package.json" "$dest/"
echo "$dest/claude.exe"
