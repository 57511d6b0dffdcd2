"""`opsgate cache ...` against a running gateway, and `opsgate models quantize`, as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opsgate.access.principal import Principal
from tests.cache.conftest import CachedGateway
from tests.cache.test_semantic_gateway import SEMANTIC, ask, result
from tests.fixtures.needs import import_or_need
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
KEYS = {"a1": Principal(key_id="a1", team_id="team-a")}


def opsgate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_stats_purge_erase(cached: CachedGateway, upstreams: dict[str, FakeUpstream]) -> None:
    gw = cached(SEMANTIC, keys=KEYS)
    ask(gw, "How do I reset my password?", user="alice")
    ask(gw, "What is the refund policy?", user="bob")
    stats = opsgate("cache", "stats", "--url", gw.base)
    assert stats.returncode == 0, stats.stderr
    assert "memory" in stats.stdout and "hashing-v1-1024" in stats.stdout
    erased = opsgate("cache", "erase", "alice", "--url", gw.base)
    assert "purged 1 exact and 1 semantic" in erased.stdout
    refused = opsgate("cache", "purge", "--url", gw.base)
    assert refused.returncode == 1 and "name what to purge" in refused.stderr
    purged = opsgate("cache", "purge", "--model", "m", "--older-than", "0s", "--url", gw.base)
    assert "purged 1 exact" in purged.stdout, purged.stderr
    assert result(ask(gw, "What is the refund policy?")) == "miss"


def test_quantize_then_the_onnx_embedders_agree_with_the_local_one(tmp_path: Path) -> None:
    for module in ("torch", "onnxruntime", "onnx"):
        import_or_need(module, "the `embed` extra is not installed")
    done = opsgate("models", "quantize", "--out", str(tmp_path / "onnx"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "onnx" / "model.int8.onnx").exists()
    from opsgate.cache.embed.local import LocalEmbedder
    from opsgate.cache.embed.onnx import OnnxEmbedder

    texts = ["How do I reset my password?", "best pizza in Naples", "a much longer question " * 9]
    reference = LocalEmbedder().embed_now(texts)
    fp32 = OnnxEmbedder(tmp_path / "onnx", quantized=False).embed_now(texts)
    int8 = OnnxEmbedder(tmp_path / "onnx").embed_now(texts)
    assert np.einsum("ij,ij->i", reference, fp32).min() > 0.9999
    assert np.einsum("ij,ij->i", reference, int8).min() > 0.97
