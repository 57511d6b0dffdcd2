"""The labelled injection sets in `../shared/data` and the one deterministic split of them.

Rows that are near-copies of each other (jailbreak variants share most of their text; a clean
and a poisoned copy of the same document; documents poisoned with the same attack) are grouped,
and a group never straddles train and held-out: otherwise the held-out score would measure
recall of memorised text. The split is stratified by (source, label) and ordered by a CRC-32 of
the group key and the seed, so it does not depend on file order, platform or numpy version.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from opsgate.guard.normalize import normalize

SEED = 20_240_601
HELDOUT_FRACTION = 0.3
NEAR_COPY_JACCARD = 0.5
"""Texts whose character 5-gram sets overlap this much (MinHash estimate) share a group."""
_MINHASH_K = 64


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; `untrusted` rows are retrieved documents (indirect injection)."""

    id: str
    text: str
    label: int
    source: str
    attack_kind: str
    hard_negative: bool = False
    untrusted: bool = False
    group: str = ""
    attack_text: str | None = None
    system_prompt: str | None = None
    """The system prompt the user turn was sent under (CyberSecEval rows): some injections are
    attacks only against it ("only talk about cooking" + "what is the capital of France?")."""
    extra: bool = False
    """From `injection/train.jsonl`: training only, never part of the held-out split."""


def default_data_dir() -> Path:
    """`../shared/data` next to the repository (a source checkout; never inside the repo)."""
    return Path(__file__).resolve().parents[4].parent / "shared" / "data"


def _jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def load_direct(path: Path, *, extra: bool = False) -> list[Example]:
    """User prompts (`injection/dev.jsonl`, or `train.jsonl` with `extra`); a row's own
    `group` (GPTFuzz templates, garak probe families) keeps its variants together."""
    return [
        Example(
            id=str(row["id"]),
            text=str(row["text"]),
            label=int(str(row["label"])),
            source=str(row["source"]),
            attack_kind=str(row.get("attack_kind") or "none"),
            hard_negative=bool(row.get("hard_negative")),
            group=f"{row['source']}:{row['group']}" if row.get("group") else "",
            system_prompt=str(row["system_prompt"]) if row.get("system_prompt") else None,
            extra=extra,
        )
        for row in _jsonl(path)
    ]


def load_indirect(path: Path) -> list[Example]:
    """BIPIA documents: clean and poisoned copies, grouped by document and by attack text."""
    rows = _jsonl(path)
    return [
        Example(
            id=str(row["id"]),
            text=str(row["document"]),
            label=int(str(row["label"])),
            source=f"bipia_{row['task']}",
            attack_kind="indirect_document" if row["label"] else "none",
            untrusted=True,
            group=f"bipia:{row['task']}:{row['context_index']}",
            attack_text=str(row["attack_text"]) if row.get("attack_text") else None,
        )
        for row in rows
    ]


def load_all(data_dir: Path | None = None) -> list[Example]:
    """Both dev sets, grouped (see the module docstring): what `split` divides."""
    root = data_dir or default_data_dir()
    direct = load_direct(root / "injection" / "dev.jsonl")
    indirect = load_indirect(root / "indirect_injection" / "dev.jsonl")
    return group_examples([*direct, *indirect])


def load_extra(data_dir: Path | None = None) -> list[Example]:
    """`injection/train.jsonl` (training only; empty when the folder has none)."""
    path = (data_dir or default_data_dir()) / "injection" / "train.jsonl"
    return load_direct(path, extra=True) if path.exists() else []


def with_extra(
    fitting: Sequence[Example], heldout: Sequence[Example], extra: Sequence[Example]
) -> list[Example]:
    """The training part of `split` plus the extra rows, grouped together (for the folds).
    An extra row that is a near-copy of a held-out row is dropped: training on it would
    leak the held-out row. The held-out part itself is left exactly as `split` made it."""
    if not extra:
        return list(fitting)
    grouped = group_examples([*fitting, *heldout, *extra])
    held_ids = {ex.id for ex in heldout}
    tainted = {ex.group for ex in grouped if ex.id in held_ids}
    return [
        ex for ex in grouped if ex.id not in held_ids and not (ex.extra and ex.group in tainted)
    ]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _shingles(text: str) -> npt.NDArray[np.uint64]:
    """CRC-32 of each character 5-gram of the folded text (independent of the classifier's
    features, so changing those never moves a row between train and held-out)."""
    folded = normalize(text).text
    grams5 = {folded[i : i + 5] for i in range(max(1, len(folded) - 4))}
    return np.array(
        sorted(zlib.crc32(g.encode("utf-8", "surrogatepass")) for g in grams5), dtype=np.uint64
    )


def _minhash(text: str, salts: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    shingles = _shingles(text)
    if len(shingles) == 0:
        return np.zeros(_MINHASH_K, dtype=np.uint64)
    mixed = (shingles[None, :] ^ salts[:, None]) * np.uint64(0x9E3779B97F4A7C15)
    result: npt.NDArray[np.uint64] = mixed.min(axis=1)
    return result


def group_examples(examples: Sequence[Example]) -> list[Example]:
    """Give each example the id of its group: near-copies, and rows sharing a given group or
    attack text, end up together."""
    n = len(examples)
    uf = _UnionFind(n)
    by_key: dict[str, int] = {}
    for i, ex in enumerate(examples):
        for key in (ex.group, ex.attack_text and f"attack:{ex.attack_text}"):
            if key:
                uf.union(i, by_key.setdefault(key, i))
    salts = np.random.default_rng(SEED).integers(0, 2**63, size=_MINHASH_K, dtype=np.uint64)
    signatures = np.stack([_minhash(ex.text, salts) for ex in examples])
    for i in range(n):
        similar = (signatures[i + 1 :] == signatures[i]).mean(axis=1) >= NEAR_COPY_JACCARD
        for j in np.flatnonzero(similar):
            uf.union(i, i + 1 + int(j))
    first_id: dict[int, str] = {}
    for i, ex in enumerate(examples):
        root = uf.find(i)
        first_id[root] = min(first_id.get(root, ex.id), ex.id)
    # named by content (the smallest id), not position: file order never changes a group's key
    return [replace(ex, group=f"group:{first_id[uf.find(i)]}") for i, ex in enumerate(examples)]


PAIRED_SHARE = 4
"""One benign prompt in this many is paired with a system prompt (`with_system_prompts`)."""


def with_system_prompts(examples: Sequence[Example], seed: int = SEED) -> list[Example]:
    """Benign prompts sent under the system prompts the attacks were sent under: one in
    `PAIRED_SHARE` gets one (chosen by CRC-32 of its id). Without them every row with a system
    prompt would be an attack, and the context features (`guard.injection.context`) would
    learn that a system prompt alone means an attack. Each attack sent under a system prompt
    is also kept without it (`<id>:bare`, same group): a caller may not pass the system
    prompt, and the n-grams must catch what they can on their own."""
    pool = sorted({ex.system_prompt for ex in examples if ex.system_prompt and ex.label})
    if not pool:
        return list(examples)
    paired = []
    for ex in examples:
        pick = _order(ex.id, seed)
        if not ex.label and not ex.untrusted and not ex.system_prompt and pick % PAIRED_SHARE == 0:
            ex = replace(ex, system_prompt=pool[(pick // PAIRED_SHARE) % len(pool)])
        paired.append(ex)
    bare = [
        replace(ex, id=f"{ex.id}:bare", system_prompt=None)
        for ex in examples
        if ex.label and ex.system_prompt
    ]
    return paired + bare


def _order(key: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{key}".encode())


def _strata(examples: Iterable[Example]) -> dict[tuple[str, int], list[str]]:
    """(source, label) of each group's first row -> its groups, in the seeded order."""
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    seen: set[str] = set()
    for ex in examples:
        if ex.group not in seen:
            seen.add(ex.group)
            strata[(ex.source, ex.label)].append(ex.group)
    return strata


def split(
    examples: Sequence[Example], seed: int = SEED, fraction: float = HELDOUT_FRACTION
) -> tuple[list[Example], list[Example]]:
    """(train, held-out): about `fraction` of each (source, label) stratum's rows held out,
    whole groups at a time."""
    sizes: dict[str, int] = defaultdict(int)
    for ex in examples:
        sizes[ex.group] += 1
    held: set[str] = set()
    for groups in _strata(examples).values():
        goal = fraction * sum(sizes[g] for g in groups)
        taken = 0
        for group in sorted(groups, key=lambda g: _order(g, seed)):
            if taken >= goal:
                break
            held.add(group)
            taken += sizes[group]
    train = [ex for ex in examples if ex.group not in held]
    return train, [ex for ex in examples if ex.group in held]


def folds(examples: Sequence[Example], k: int, seed: int = SEED) -> list[int]:
    """A fold number per example: groups dealt round-robin within each stratum."""
    fold_of: dict[str, int] = {}
    for groups in _strata(examples).values():
        for i, group in enumerate(sorted(groups, key=lambda g: _order(g, seed + 1))):
            fold_of.setdefault(group, i % k)
    return [fold_of[ex.group] for ex in examples]
