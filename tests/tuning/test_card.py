"""The data card: what the export did (redaction, exact duplicates dropped, corrections as the
answer), the counts and the split, recorded when a job is created; the token counts the worker
adds are the ones training sees. (The card of a trained adapter, next to its weights and in the
registry: tests/tuning/test_jobs_api.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.needs import import_or_need

import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from opsgate.tuning.card import CARD_FILE, token_counts  # noqa: E402
from opsgate.tuning.data import parse_lines, split  # noqa: E402
from opsgate.tuning.lora import encode, lengths, load_tokenizer  # noqa: E402
from tests.access.helpers import MASTER, Client  # noqa: E402
from tests.fixtures.gateway import GatewayServer, make_config  # noqa: E402
from tests.tuning.tiny import COLOURS, tiny_base, toy_lines  # noqa: E402

pytestmark = pytest.mark.integration


def _rows() -> list[dict[str, Any]]:
    rows = []
    for n, (thing, colour) in enumerate(COLOURS.items()):
        messages = [{"role": "user", "content": f"what colour is the {thing} ? mail a{n}@x.org"}]
        rows.append({"messages": messages, "output": f"the {thing} is {colour}"})
    rows.append(dict(rows[0]))  # an exact duplicate: the export drops it
    # A corrected answer (the correction is the target) to a question asked before: one
    # conversation, two examples.
    again = rows[1]["messages"]
    rows.append({"messages": again, "output": "the grass is red", "reference": "green, always"})
    rows.append({"messages": [{"role": "user", "content": "what colour is the coal ? ?"}]})
    return rows  # the last has no answer: nothing to train on


def test_a_job_records_what_its_export_did(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    config = make_config(
        {
            "settings": {
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                "master_key": MASTER,
            },
            "traces": {"store_bodies": "full"},  # a body key beside the database
            "tuning": {"folder": str(tmp_path / "tuning"), "enabled": False},  # no runner
        }
    )
    with GatewayServer(config) as gw:
        admin = Client(gw.base, MASTER, gw)
        made = admin.ok("POST", "/admin/v1/datasets", {"name": "colours", "rows": _rows()})
        dataset = made["dataset"]["id"]
        body = {"dataset": "colours", "base": str(base), "adapter": "c1", "validation": 0.25}
        job = admin.ok("POST", "/admin/v1/tuning/jobs", body)
        card = job["card"]
        on_disk = json.loads((tmp_path / "tuning" / job["id"] / CARD_FILE).read_text())

    assert card == on_disk and card["job_id"] == job["id"]
    assert card["dataset"] == {"id": dataset, "name": "colours", "version": 1}
    export = card["export"]
    assert export["format"] == "openai-chat" and export["pii_redaction"] is True
    assert export["redactions"] >= len(COLOURS)  # every e-mail address
    assert export["corrections_used"] == 1 and "exact duplicates" in export["dedup"]
    counts = card["counts"]
    assert counts["dataset_rows"] == len(_rows())
    assert counts["duplicates_dropped"] == 1 and counts["skipped_without_answer"] == 1
    assert counts["rows_exported"] == len(_rows()) - 2 == counts["train"] + counts["validation"]
    assert counts["train"] == job["examples"]["train"] and counts["malformed"] == 0
    assert sum(counts["conversations"].values()) == counts["rows_exported"] - 1  # grass twice
    assert card["split"]["seed"] == f"{dataset}@1" and card["split"]["validation_share"] == 0.25
    data = (tmp_path / "tuning" / job["id"] / "data.jsonl").read_text()
    assert "@x.org" not in data and "green, always" in data and "the grass is red" not in data


def test_token_counts_are_what_training_encodes(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_base(tmp_path / "base"))
    parts = split(parse_lines(toy_lines()), 0.2)
    counted = token_counts(parts, lambda ex: lengths(tokenizer, ex), max_length=256)
    for side, examples in (("train", parts.train), ("validation", parts.validation)):
        encoded = [encode(tokenizer, ex, 256) for ex in examples]
        total = sum(len(ids) for ids, _ in encoded)
        answer = sum(sum(1 for t in labels if t != -100) for _, labels in encoded)
        assert counted[side]["prompt"] + counted[side]["answer"] == total
        assert counted[side]["answer"] == answer and counted[side]["truncated"] == 0
    short = token_counts(parts, lambda ex: lengths(tokenizer, ex), max_length=8)
    assert short["train"]["truncated"] == len(parts.train)  # every example is longer than 8
