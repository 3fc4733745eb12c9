"""scripts/embeddings.sh leaves a loadable ONNX Runtime and the MiniLM model + tokenizer files where it says."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

from support.servers import REPO_ROOT

TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")


def test_embeddings_script_prints_paths_that_work():
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "embeddings.sh")], check=True, capture_output=True, text=True, timeout=600
    ).stdout
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert set(env) == {"ORT_DYLIB_PATH", "AURORA_EMBED_MODEL_DIR"}

    # The library is the ONNX Runtime the Rust `ort` crate expects: its C API reports version 1.24.4.
    lib = ctypes.CDLL(env["ORT_DYLIB_PATH"])

    class OrtApiBase(ctypes.Structure):
        _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p))]

    lib.OrtGetApiBase.restype = ctypes.POINTER(OrtApiBase)
    assert lib.OrtGetApiBase().contents.GetVersionString() == b"1.24.4"

    model_dir = Path(env["AURORA_EMBED_MODEL_DIR"])
    model = (model_dir / "model.onnx").read_bytes()
    assert len(model) == 22_928_619 and b"input_ids" in model and b"attention_mask" in model
    for name in TOKENIZER_FILES:
        json.loads((model_dir / name).read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "WordPiece" and "[CLS]" in tokenizer["model"]["vocab"]
    assert json.loads((model_dir / "config.json").read_text())["hidden_size"] == 384
