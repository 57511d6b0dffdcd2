"""`python -m opsgate.tools.injection.finetune`: a tiny real encoder fine-tuned end to end on a
small labelled folder; the folder it writes loads with its thresholds through the config."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.fixtures.needs import import_or_need

torch = import_or_need("torch", "fine-tuning needs torch (guard-ml)")
transformers = import_or_need("transformers", "fine-tuning needs transformers (guard-ml)")

from opsgate.config.guard import GuardConfig  # noqa: E402
from opsgate.guard.injection.transformer import THRESHOLDS_FILE, TransformerDetector  # noqa: E402
from opsgate.guard.service import load_injection  # noqa: E402
from opsgate.tools.injection import finetune  # noqa: E402
from tests.guard.test_injection_transformer import (  # noqa: E402
    ATTACKS,
    BENIGN,
    _config,
    _tokenizer,
    one_torch_thread,  # noqa: F401  (autouse: one torch thread in this module too)
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny BERT encoder with its tokenizer: what `--base` points at."""
    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = _tokenizer(folder)
    torch.manual_seed(0)
    encoder = transformers.BertModel(_config(2, {0: "A", 1: "B"}, tokenizer.vocab_size))
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _data(root: Path) -> Path:
    """A labelled folder shaped like ../shared/data (prompts and BIPIA-like documents)."""
    rng = random.Random(1)
    prompts = []
    for i in range(60):
        label = i % 2
        words = rng.choice(ATTACKS if label else BENIGN)
        prompts.append(
            {"id": f"p{i}", "text": f"{words} {i}", "label": label, "source": f"s{label}"}
        )
    documents = []
    for i in range(12):
        clean = " ".join(rng.choices(BENIGN, k=3))
        attack = rng.choice(ATTACKS)
        for label in (0, 1):
            text = f"{clean} {attack}" if label else clean
            row = {"id": f"d{i}-{label}", "document": text, "label": label, "task": "email"}
            row |= {"context_index": i, "attack_text": attack if label else None}
            documents.append(row)
    for name, found in (("injection", prompts), ("indirect_injection", documents)):
        (root / name).mkdir(parents=True)
        lines = "\n".join(json.dumps(r) for r in found)
        (root / name / "dev.jsonl").write_text(lines + "\n", encoding="utf-8")
    return root


def test_finetune_writes_a_calibrated_model_the_backend_loads(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    code = finetune.main(
        ["--out", str(out), "--base", str(base), "--data", str(_data(tmp_path / "data"))]
    )
    assert code == 0 and "held out, never read" in capsys.readouterr().out
    meta = json.loads((out / THRESHOLDS_FILE).read_text())
    assert 0 <= meta["threshold"] <= 1 and 0 <= meta["untrusted_threshold"] <= 1
    assert meta["train_digest"] != meta["heldout_digest"]

    detector = TransformerDetector.load(out)
    assert (detector.threshold, detector.untrusted_threshold) == (
        meta["threshold"],
        meta["untrusted_threshold"],
    )
    attack = detector.scan(ATTACKS[0]).score
    assert attack > detector.scan(BENIGN[0]).score, "four epochs separate the two kinds"
    config = GuardConfig.model_validate(
        {"injection": {"backend": "transformer", "model_path": str(out), "threshold": 0.9}}
    )
    from_config = load_injection(config)
    assert isinstance(from_config, TransformerDetector)
    assert from_config.threshold == 0.9  # the config wins over the file
    assert from_config.untrusted_threshold == meta["untrusted_threshold"]


def test_a_bad_thresholds_file_is_a_clear_error(base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    model = transformers.BertForSequenceClassification.from_pretrained(base)
    model.config.id2label, model.config.label2id = {0: "SAFE", 1: "INJECTION"}, {}
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / THRESHOLDS_FILE).write_text('{"threshold": 3}')
    with pytest.raises(ValueError, match="between 0 and 1"):
        TransformerDetector.load(folder)
    (folder / THRESHOLDS_FILE).write_text("not json")
    with pytest.raises(ValueError, match="cannot read"):
        TransformerDetector.load(folder)
