"""What a base model is, checked without loading it (no torch): the job service validates a
base folder when a job is created, long before a worker loads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


class BaseModelError(ValueError):
    """The base model folder is missing, incomplete or wants remote code."""


def base_fingerprint(base: Path) -> str:
    """Identify a base model without trusting it: refuse remote code, hash config + weights'
    names and sizes (not their bytes: a 7B model would take minutes to hash)."""
    config = base / "config.json"
    if not base.is_dir() or not config.is_file():
        raise BaseModelError(f"base model {base}: no such folder with a config.json")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"base model {base}: config.json is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BaseModelError(f"base model {base}: config.json is not a JSON object")
    if "auto_map" in data or any(base.glob("*.py")):
        raise BaseModelError(
            f"base model {base} needs remote code (auto_map or .py files); "
            "trust_remote_code is never enabled"
        )
    weights = sorted(p for p in base.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise BaseModelError(f"base model {base}: no weights (.safetensors or .bin)")
    h = hashlib.sha256(config.read_bytes())
    for w in weights:
        h.update(f"{w.name}:{w.stat().st_size}".encode())
    return h.hexdigest()[:16]
