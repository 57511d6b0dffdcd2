"""`opsgate kb ...` as real processes against a real gateway: create, ingest a folder (again:
all unchanged; after an edit: one replaced; a corrupt PDF fails alone), list, docs, search,
delete a document and the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream
from tests.rag.helpers import MASTER, start
from tests.rag.pdfs import text_pdf

pytestmark = pytest.mark.integration


def test_kb_round_trip(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    gw = start(gateway, upstreams["alpha"])
    env = {"OPSGATE_MASTER_KEY": MASTER}
    url = ("--url", gw.base)
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "vacation.md").write_text("# Vacation\n\nThirty vacation days a year.")
    (docs / "it.html").write_text("<h1>Laptops</h1><p>IT swaps broken laptops.</p>")
    (docs / "parking.pdf").write_bytes(text_pdf(["The garage opens at six."]))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (docs / "image.png").write_bytes(b"\x89PNG")

    assert run("kb", "create", "handbook", *url, env=env).returncode == 0
    first = run("kb", "ingest", "handbook", str(docs), *url, env=env)
    assert first.returncode == 1  # one file failed
    assert "3 added, 0 replaced, 0 unchanged, 1 failed" in first.stdout
    assert "broken.pdf" in first.stderr
    (docs / "broken.pdf").unlink()
    again = run("kb", "ingest", "handbook", str(docs), *url, env=env)
    assert again.returncode == 0 and "0 added, 0 replaced, 3 unchanged" in again.stdout
    (docs / "hr" / "vacation.md").write_text("# Vacation\n\nThirty-two vacation days a year.")
    edited = run("kb", "ingest", "handbook", str(docs), *url, env=env)
    assert "0 added, 1 replaced, 2 unchanged" in edited.stdout

    listed = json.loads(run("kb", "list", *url, "--json", env=env).stdout)["data"]
    assert [(b["name"], b["documents"]) for b in listed] == [("handbook", 3)]
    paths = [
        d["path"]
        for d in json.loads(run("kb", "docs", "handbook", *url, "--json", env=env).stdout)["data"]
    ]
    assert paths == ["hr/vacation.md", "it.html", "parking.pdf"]
    found = json.loads(
        run("kb", "search", "handbook", "when does the garage open", *url, "--json", env=env).stdout
    )
    assert found["data"][0]["path"] == "parking.pdf"
    table = run("kb", "search", "handbook", "vacation days", *url, env=env)
    assert "hr/vacation.md" in table.stdout and "Thirty-two" in table.stdout

    assert run("kb", "delete", "handbook", "--document", "it.html", *url, env=env).returncode == 0
    assert run("kb", "delete", "handbook", *url, env=env).returncode == 0
    gone = run("kb", "search", "handbook", "x", *url, env=env)
    assert gone.returncode == 1 and "not found" in gone.stderr
