#!/usr/bin/env bash
# A Wine prefix for running ferry.exe (built for x86_64-pc-windows-gnu) on Linux:
#
#   tests/wine/setup.sh PREFIX
#
# - Creates PREFIX with `wineboot -i` if it is not there (once; ~10 s).
# - Puts into its system32 a bcryptprimitives.dll that Wine 8.0 lacks: Rust's standard library
#   imports ProcessPrng from it, and without it every Rust program dies at start. The DLL is
#   built here from process_prng.c with mingw-w64 and forwards to BCryptGenRandom.
# Needs wine64 and gcc-mingw-w64-x86-64 (Debian packages; scripts/test installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:?usage: setup.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$prefix/system.reg" ]; then
    wineboot -i >/dev/null
    wineserver -w
fi
dll=$prefix/drive_c/windows/system32/bcryptprimitives.dll
if [ ! -f "$dll" ] || [ "$here/process_prng.c" -nt "$dll" ] || [ "$here/bcryptprimitives.def" -nt "$dll" ]; then
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$here/process_prng.c" "$here/bcryptprimitives.def" -lbcrypt
fi
