"""[backends] Find a model's files (local path or Hugging Face id) and fingerprint them (for the cache keys).

Every backend loads from a local directory, so the HF and vLLM backends resolve a model the same
way and key the disk cache with the same fingerprint. The fingerprint hashes the config and
tokenizer files in full and, for weight files, their names, sizes and (for safetensors) their
header, which lists every tensor's name, shape, dtype and offsets: cheap for a 72B model, yet it
changes whenever the weights are re-saved. Files bigger than ``FULL_HASH_LIMIT`` are never read in
full (other big files: their first ``FULL_HASH_LIMIT`` bytes).
"""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

#: Files up to this size are hashed in full; bigger ones by name, size and header.
FULL_HASH_LIMIT = 16 * 1024 * 1024


#: What is fetched from the Hub: config, tokenizer and safetensors weights (not other formats).
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.py", "*.jinja"]


class ModelNotFoundError(FileNotFoundError):
    """A model id or path that cannot be found (offline, misspelt, or not downloaded)."""


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """The local directory holding ``model``: the path itself, or the Hub snapshot of the id.

    Raises ModelNotFoundError naming the model and how to provide it.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {str(path)!r} has no config.json; "
                                     "save the model there with save_pretrained()")
        return path
    text = str(model)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep in text.replace("/", ""):
        raise ModelNotFoundError(f"model path {text!r} does not exist")
    from huggingface_hub import snapshot_download
    is_offline = offline()
    try:
        snap = Path(snapshot_download(text, local_files_only=is_offline, allow_patterns=_HUB_FILES))
        if not any(snap.glob("*.safetensors")):  # an older repo with PyTorch .bin weights only
            snap = Path(snapshot_download(text, local_files_only=is_offline, allow_patterns=["*.bin"]))
    except Exception as err:  # huggingface_hub raises many types (offline, 404, connection)
        how = ("HF_HUB_OFFLINE is set and the model is not in the local Hugging Face cache"
               if is_offline else f"it could not be downloaded ({type(err).__name__}: {err})")
        raise ModelNotFoundError(
            f"model {text!r} not found: {how}. Provide it as a local directory "
            "(a path to a folder saved with save_pretrained, holding config.json, tokenizer and "
            "weights), or unset HF_HUB_OFFLINE on a machine with network access so that it can "
            "be downloaded from the Hugging Face Hub.") from err
    if not any(snap.glob("*.safetensors")) and not any(snap.glob("*.bin")):
        raise ModelNotFoundError(f"model {text!r}: the local snapshot {str(snap)!r} has no weight files "
                                 "(.safetensors or .bin); download it completely or pass a local directory")
    return snap


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(min(n, FULL_HASH_LIMIT))


def fingerprint(model_dir: str | os.PathLike) -> str:
    """A hex digest identifying the config, tokenizer and weights in ``model_dir`` (see module doc)."""
    root = Path(model_dir)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.relative_to(root).parts)
    if not files:
        raise ModelNotFoundError(f"cannot fingerprint {str(root)!r}: no model files in it")
    for f in files:
        rel = f.relative_to(root).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= FULL_HASH_LIMIT:
            h.update(hashlib.sha256(f.read_bytes()).digest())
        elif f.suffix == ".safetensors":
            h.update(_safetensors_header(f))
        else:  # a big non-safetensors file: its first FULL_HASH_LIMIT bytes
            with open(f, "rb") as fh:
                h.update(hashlib.sha256(fh.read(FULL_HASH_LIMIT)).digest())
    return h.hexdigest()[:24]
