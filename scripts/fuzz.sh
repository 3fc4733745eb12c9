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
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(client_packet server_packet ask_statement)
CORPUS_ROOT="${AURORA_CACHE:-$HOME/.cache/aurora}/fuzz-corpus"

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
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
    cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 2>&1 \
        | grep -E '^(#[0-9]+ +DONE|==[0-9]+==|SUMMARY|Done)|panicked|ERROR' || true
    if ls "$ROOT/fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
        echo "fuzz target $target crashed; inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
