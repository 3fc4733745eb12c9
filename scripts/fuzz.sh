#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each) with cargo-fuzz (libFuzzer) on nightly Rust.
#
#   scripts/fuzz.sh [seconds-per-target] [target …]
#
# Installs cargo-fuzz and the nightly toolchain when missing. The corpus of each target persists under
# ~/.cache/aurora/fuzz-corpus/<target> so repeated runs go deeper; a crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-30}"
shift || true
TARGETS=("$@")
# Every [[bin]] of fuzz/Cargo.toml unless targets are named.
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' "$ROOT/fuzz/Cargo.toml")
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
CORPUS_ROOT="$CACHE/fuzz-corpus"
# The sanitizer build of every dependency takes ~10 min on 2 cores: kept in the cache, so a warm machine skips it.
TARGET_DIR="$CACHE/fuzz-target"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cd "$ROOT/fuzz"
for target in "${TARGETS[@]}"; do
    corpus="$CORPUS_ROOT/$target"
    mkdir -p "$corpus"
    # Seed the packet targets with the golden packets captured from a real client.
    if [ "$target" = client_packet ] && [ -d "$ROOT/fixtures/native/golden" ]; then
        for f in "$ROOT"/fixtures/native/golden/*.raw; do
            [ -e "$f" ] || continue
            # The first byte selects revision/compression in the target; 0x83 = 54469, compressed.
            { printf '\x03'; cat "$f"; } > "$corpus/golden-$(basename "$f" .raw)"
            { printf '\x83'; cat "$f"; } > "$corpus/golden-lz4-$(basename "$f" .raw)"
        done
    fi
    # Seed the ingest encoder with an envelope event (first byte 0x00: the envelope mapping; 0x80+: every type).
    if [ "$target" = ingest_row ]; then
        printf '\x00{"event_id":"8f14e45f-ceea-4e7a-9b1d-2c4f0b6a7d10","timestamp":"2026-10-01T12:00:00Z","event_type":"purchase","tenant_id":"acme","payload":{"user_id":"u1","amount":12.5},"schema_version":1}' > "$corpus/envelope"
        printf '\xff{"c0":"s","n":{"c1":"8f14e45fceea4e7a9b1d2c4f0b6a7d10","m":{"c2":1700000000}},"c3":255,"c6":"18446744073709551615"}' > "$corpus/every-type"
    fi
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
    cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$target" "$corpus" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 2>&1 \
        | grep -E '^(#[0-9]+ +DONE|==[0-9]+==|SUMMARY|Done)|panicked|ERROR' || true
    if ls "$ROOT/fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
        echo "fuzz target $target crashed; inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
