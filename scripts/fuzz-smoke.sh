#!/usr/bin/env bash
# A short fuzzing run of every parser that reads outside input (the targets in
# tests/fuzz/, cargo-fuzz + libFuzzer): each target for $FUZZ_SECONDS seconds
# (default 20), starting from the seed corpus in tests/fuzz/corpus/. Fails on
# the first crash, leak or timeout, leaving the input in
# tests/fuzz/artifacts/TARGET/ (reproduce: cargo +nightly fuzz run --fuzz-dir
# tests/fuzz TARGET FILE). New inputs libFuzzer finds go to a scratch
# directory, not into the repository's seeds.
#
# Needs a nightly toolchain (rustup toolchain install nightly); installs
# cargo-fuzz with `cargo install cargo-fuzz` when it is missing, and says so.
# FUZZ_TARGETS="scenario console" runs only those. See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-20}
FUZZ_DIR=tests/fuzz

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo 'fuzz-smoke: no nightly toolchain; install one with: rustup toolchain install nightly' >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo 'fuzz-smoke: cargo-fuzz is missing; installing it (cargo install cargo-fuzz)' >&2
    cargo install cargo-fuzz
fi

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")}
cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The file-reading targets keep a scratch run directory in the temporary
# directory: this one, so none is left behind.
export TMPDIR="$work"
for target in $targets; do
    mkdir -p "$work/$target"
    echo "fuzz-smoke: $target for ${SECONDS_EACH}s"
    # The first corpus directory receives new inputs: the scratch one.
    if ! cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "$target" "$work/$target" "$FUZZ_DIR/corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 40 "$work/$target.log" >&2
        echo "fuzz-smoke: $target failed; its input is in $FUZZ_DIR/artifacts/$target/" >&2
        exit 1
    fi
    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$work/$target.log" | sed "s/^/  /"
done
echo "fuzz-smoke: every target ran ${SECONDS_EACH}s without a crash"
