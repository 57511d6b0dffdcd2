"""The `transformer` injection backend: a local Hugging Face sequence-classification model.

Point `guard.injection.model_path` at a downloaded folder (for example
`protectai/deberta-v3-base-prompt-injection-v2`); nothing is fetched from the hub and no remote
code runs. Needs the `guard-ml` extra (torch CPU, transformers). A scan costs a forward pass per
512-token chunk (tens to hundreds of milliseconds on CPU), so the detector says `offload` and
the guard stage runs it in a worker thread.

The text is normalised first. The model scores the text as sent (models are trained on it,
cased), the folded text when folding undid a disguise (homoglyphs, leetspeak, zero-width ...)
and each decoded payload; long views are cut into overlapping chunks and the score is the
largest one, so an injected line at the end of a long document is not truncated away. Work is
bounded: at most `max_chunks` chunks per scan, taken from the start and the end of long views.
The high-confidence rule families still flag on their own, as in the default detector.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsgate.guard.injection.detector import InjectionDetector, InjectionResult, verdict
from opsgate.guard.injection.transformer_labels import Labels, read_labels
from opsgate.guard.normalize import NormalizedText, normalize

EXTRA_HINT = "pip install 'opsgate[guard-ml]' (and torch's CPU build first)"
DEFAULT_THRESHOLD = 0.5
"""A probability cut; calibrate a model's own with `opsgate guard eval`."""
THRESHOLDS_FILE = "opsgate-injection.json"
"""Thresholds chosen for the model at training time (`finetune` writes it), read at load when
the config names none; a folder without it gets `DEFAULT_THRESHOLD`."""
THRESHOLD_KEYS = ("threshold", "untrusted_threshold")
MAX_CHUNKS = 8
"""Model passes per scan, all views together (about 4k tokens of a long document)."""
CHARS_PER_TOKEN = 6
"""Views are clipped to `max_chunks * max_length * CHARS_PER_TOKEN` characters (start + end)
before tokenising, so a megabyte of text never reaches the tokenizer."""
BATCH = 8


class TransformerDetector:
    """Prompt-injection detector on a sequence-classification model; same results as
    `InjectionDetector` (`score`, `is_attack`, `reasons`). Safe to share between threads."""

    offload = True
    """Milliseconds per scan: the guard stage always runs it in a worker thread."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: Labels,
        *,
        threshold: float | None = None,
        untrusted_threshold: float | None = None,
        max_length: int = 512,
        stride: int | None = None,
        max_chunks: int = MAX_CHUNKS,
        meta: dict[str, Any] | None = None,
    ) -> None:
        import torch

        self._torch = torch
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the model needs a fast tokenizer (a tokenizer.json in its folder)")
        self.model, self.tokenizer, self.labels = model, tokenizer, labels
        self.meta = meta or {}
        """What the folder's `THRESHOLDS_FILE` says (training digests, config), if it has one."""
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self.untrusted_threshold = (
            self.threshold if untrusted_threshold is None else untrusted_threshold
        )
        self.max_length = min(max_length, model_limit(model, tokenizer))
        self.body = self.max_length - tokenizer.num_special_tokens_to_add(pair=False)
        stride = min(64, self.body // 4) if stride is None else stride
        if self.body < 8 or not 0 <= stride <= self.body // 2 or max_chunks < 1:
            raise ValueError(
                f"need max_length >= {8 + self.max_length - self.body}, "
                f"0 <= stride <= {self.body // 2} and max_chunks >= 1 for chunks of "
                f"{self.max_length} tokens (got stride {stride}, max_chunks {max_chunks})"
            )
        self.stride, self.max_chunks = stride, max_chunks
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()
        """Fast (Rust) tokenizers raise `RuntimeError: Already borrowed` when two threads call
        one at once (huggingface/tokenizers#537); the forward pass itself needs no lock."""

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        threshold: float | None = None,
        untrusted_threshold: float | None = None,
        max_length: int = 512,
        stride: int | None = None,
        max_chunks: int = MAX_CHUNKS,
    ) -> TransformerDetector:
        """Load a local model folder on CPU, in eval mode. A missing folder or one that holds
        no usable classifier raises ValueError; a missing extra raises ImportError."""
        folder = Path(path).expanduser()
        if not str(path) or not folder.is_dir():
            raise ValueError(f"{str(path)!r} is not a folder (a local Hugging Face model)")
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} has no config.json: not a Hugging Face model folder")
        try:
            import torch  # noqa: F401  (transformers without torch fails later, less clearly)
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            hint = f"the transformer backend needs torch and transformers: {EXTRA_HINT}"
            raise ImportError(f"{hint} ({exc})") from exc
        try:  # from_pretrained raises OSError, ValueError, KeyError, safetensors errors ...
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True, output_loading_info=True
            )
        except Exception as exc:
            raise ValueError(f"cannot load a classifier from {folder}: {exc}") from exc
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])[:3]
            raise ValueError(f"{folder} is not a fine-tuned classifier: no weights for {missing}")
        labels = read_labels(model.config.id2label, model.config.problem_type, folder)
        meta = _shipped(folder)
        threshold = meta.get("threshold") if threshold is None else threshold
        if untrusted_threshold is None:
            untrusted_threshold = meta.get("untrusted_threshold")
        model = model.float().eval().requires_grad_(False)  # fp32 on CPU, whatever was saved
        return cls(
            model,
            tokenizer,
            labels,
            threshold=threshold,
            untrusted_threshold=untrusted_threshold,
            max_length=max_length,
            stride=stride,
            max_chunks=max_chunks,
            meta=meta,
        )

    def scan(
        self, text: str, *, untrusted: bool = False, system_prompt: str | None = None
    ) -> InjectionResult:
        """`system_prompt` only feeds the rule families' reasons (`rule:context_topic`): the
        model itself reads the user turn alone."""
        folded = normalize(text)
        model_score, clipped = self.score_views(self.views(text, folded))
        threshold = self.untrusted_threshold if untrusted else self.threshold
        notes = ("transformer:clipped",) if clipped else ()
        fired = InjectionDetector.fired(folded, system_prompt)
        return verdict(folded, fired, model_score, threshold, source="transformer", notes=notes)

    @staticmethod
    def views(text: str, folded: NormalizedText) -> list[str]:
        """The text as sent; the folded text only when folding did more than lower-case and
        collapse whitespace; each decoded payload. Empty and repeated views are dropped."""
        try:
            text.encode()
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes): the tokenizer rejects
            text = text.encode("utf-8", "replace").decode()
        found = [text]
        if folded.text != " ".join(text.lower().split()):
            found.append(folded.text)
        found += [d.text for d in folded.decoded]
        return [v for v in dict.fromkeys(found) if v.strip()]

    def score_views(self, views: Sequence[str]) -> tuple[float, bool]:
        """The largest attack probability over the chunks of every view, and whether some
        text was left unscored to keep within `max_chunks`."""
        if not views:
            return 0.0, False
        limit = self.max_chunks * self.max_length * CHARS_PER_TOKEN
        clipped = any(len(v) > limit for v in views)
        views = [
            v if len(v) <= limit else f"{v[: limit // 2]}\n{v[-(limit // 2) :]}" for v in views
        ]
        with self._lock:
            encoded = self.tokenizer(
                list(views),
                truncation=True,
                max_length=self.max_length,
                stride=self.stride,
                return_overflowing_tokens=True,
            )
        per_view: list[list[list[int]]] = [[] for _ in views]
        for row, view in zip(
            encoded["input_ids"], encoded["overflow_to_sample_mapping"], strict=True
        ):
            per_view[view].append(row)
        counts = [len(rows) for rows in per_view]
        picks = pick(counts, self.max_chunks)
        keep = [rows[i] for rows, chosen in zip(per_view, picks, strict=True) for i in chosen]
        clipped = clipped or len(keep) < sum(counts)
        return max(self._probabilities(keep)), clipped

    def _probabilities(self, rows: list[list[int]]) -> list[float]:
        torch = self._torch
        rows = sorted(rows, key=len)  # similar lengths share a batch: less padding
        found: list[float] = []
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            width = max(len(r) for r in batch)
            ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in batch])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in batch])
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            found += self.labels.attack_probability(logits).tolist()
        return found


def pick(counts: Sequence[int], budget: int) -> list[list[int]]:
    """Which chunks of each view to score: the budget shared out so short views are read in
    full and long ones share the rest (each view gets at least one); a long view keeps its
    first and last chunks, where an instruction usually sits."""
    shares = [0] * len(counts)
    left = budget
    order = sorted(range(len(counts)), key=counts.__getitem__)
    for done, i in enumerate(order):
        shares[i] = min(counts[i], max(1, left // (len(counts) - done)))
        left -= shares[i]
    picks = []
    for count, share in zip(counts, shares, strict=True):
        head = (share + 1) // 2
        picks.append([*range(head), *range(count - (share - head), count)])
    return picks


def _shipped(folder: Path) -> dict[str, Any]:
    """The folder's `THRESHOLDS_FILE` (empty without one), its thresholds checked."""
    path = folder / THRESHOLDS_FILE
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    values = [found.get(k) for k in THRESHOLD_KEYS] if isinstance(found, dict) else None
    if values is None or not all(
        v is None or (isinstance(v, float | int) and 0 <= v <= 1) for v in values
    ):
        raise ValueError(f"{path}: threshold and untrusted_threshold must be between 0 and 1")
    meta: dict[str, Any] = found
    return meta


def model_limit(model: Any, tokenizer: Any) -> int:
    """Tokens the model takes: the smaller of the tokenizer's `model_max_length` and the
    model's position embeddings, for those of the two it states (a tokenizer without a limit
    says 1e30)."""
    stated = [
        value
        for value in (
            getattr(tokenizer, "model_max_length", None),
            getattr(model.config, "max_position_embeddings", None),
        )
        if isinstance(value, int) and 0 < value < 1_000_000
    ]
    return min(stated, default=512)
