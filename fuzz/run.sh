#!/usr/bin/env bash
# Runs one fuzz target for N seconds (default 60) on the stable toolchain.
#   fuzz/run.sh codec_round_trip 60
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes nightly-only flags
# (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable compiler accept them, for fuzz builds only.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")"
mkdir -p "corpus/$target"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" seed -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
