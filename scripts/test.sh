#!/usr/bin/env bash
# Builds and tests everything: Rust unit/integration tests, then the end-to-end suite
# (a private ClickHouse + the release aurora-proxy + real clients).
#
#   scripts/test.sh                        # all
#   scripts/test.sh -k driver              # extra arguments go to pytest
#   AURORA_TEST_DIRECT=1 scripts/test.sh   # e2e suite against ClickHouse directly (no proxy)
#   AURORA_FUZZ_SECONDS=0 scripts/test.sh  # skip the bounded fuzz run at the end (default 10 s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

python3 scripts/module-cycles.py  # no import cycle between modules of different concerns (stdlib, instant)
scripts/setup.sh
# The embedding assets setup.sh fetched (ONNX Runtime + the MiniLM model): the tests that load them must run.
eval "$(scripts/embeddings.sh | sed -n 's/^\(ORT_DYLIB_PATH\|AURORA_EMBED_MODEL_DIR\)=/export &/p')"
export AURORA_REQUIRE_EMBEDDINGS=1
AURORA_REQUIRE_CLICKHOUSE=1 cargo test --workspace
# Release aurora-ingest: deploy/local/up.sh runs it (tests/deploy/test_local_stack.py).
cargo build --release -p aurora-proxy -p nlq -p aurora-ingest
# The ingest tests run the debug binary (the crate is built with opt-level 2 even in dev, see Cargo.toml).
cargo build -p aurora-ingest --features fault-injection   # the abort tests/ingest injects; never in release
"${AURORA_CACHE:-$HOME/.cache/aurora}/venv/bin/python" -m pytest tests "$@"
# Every fuzz target for a bounded time (the packet framers, the compressed-frame reader, the HTTP and ASK
# classifiers, the ingest encoder); a crash fails the run and leaves its input in fuzz/artifacts/.
if [ "${AURORA_FUZZ_SECONDS:-10}" != "0" ]; then
    scripts/fuzz.sh "${AURORA_FUZZ_SECONDS:-10}"
fi
