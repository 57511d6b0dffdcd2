"""Body encryption: envelopes, key loading and the no-key policy, the writer's seal point (journal
included), and key rotation over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, update

from opsgate.compliance.encryption import resolve_cipher
from opsgate.compliance.rotation import reseal_all
from opsgate.config import parse_config
from opsgate.store import SqlTraceStore, TraceWriter, dispose_engine, make_engine
from opsgate.store.crypto import (
    BodyCipher,
    DecryptionError,
    EncryptionConfigError,
    Keyring,
    create_key_file,
    is_sealed,
    key_id_of,
    load_keyring,
    open_record,
    seal_record,
)
from opsgate.store.tables.traces import traces
from tests.store.conftest import Backend, dead_port, make_trace

PROMPT = b'{"messages":[{"role":"user","content":"the violet heron sings at midnight"}]}'


def _names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


def _read_all(folder: Path, prefix: str) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith(prefix))


def keyring(*kids: str) -> Keyring:
    text = ",".join(f"{k}:{base64.b64encode(os.urandom(32)).decode()}" for k in kids)
    return Keyring.parse(text, source="test")


def test_seal_and_open_round_trip_under_the_current_key() -> None:
    cipher = BodyCipher(keyring("k1", "k0"))
    sealed = cipher.seal(PROMPT, "tr-1", "request_body")
    assert is_sealed(sealed) and key_id_of(sealed) == "k1"
    assert b"violet heron" not in sealed
    assert cipher.open(sealed, "tr-1", "request_body") == PROMPT
    assert cipher.seal(PROMPT, "tr-1", "request_body") != sealed, "a fresh nonce every time"
    assert cipher.open(b"plain legacy body", "tr-1", "request_body") == b"plain legacy body"


def test_a_ciphertext_is_bound_to_its_row_and_field() -> None:
    cipher = BodyCipher(keyring("k1"))
    sealed = cipher.seal(PROMPT, "tr-1", "request_body")
    with pytest.raises(DecryptionError, match="altered or belongs to another row"):
        cipher.open(sealed, "tr-2", "request_body")
    with pytest.raises(DecryptionError, match="altered"):
        cipher.open(sealed, "tr-1", "response_body")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError, match="altered"):
        cipher.open(bytes(flipped), "tr-1", "request_body")
    with pytest.raises(DecryptionError, match="truncated"):
        cipher.open(sealed[:20], "tr-1", "request_body")


def test_a_body_under_an_unconfigured_key_fails_clearly() -> None:
    old = BodyCipher(keyring("old"))
    sealed = old.seal(PROMPT, "tr-1", "request_body")
    with pytest.raises(DecryptionError, match="key 'old', which is not configured") as info:
        BodyCipher(keyring("new")).open(sealed, "tr-1", "request_body")
    assert info.value.key_id == "old"
    record = make_trace(1, request_body=sealed)
    with pytest.raises(DecryptionError, match="no encryption keys are configured"):
        open_record(None, record)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no keys"),
        ("k1", "id:base64"),
        ("bad id!:AAAA", "id:base64"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes; AES-256 needs 32"),
        (f"k1:{base64.b64encode(bytes(32)).decode()},k1:{base64.b64encode(bytes(32)).decode()}",
         "given twice"),
    ],
)  # fmt: skip
def test_malformed_keys_are_refused(text: str, problem: str) -> None:
    with pytest.raises(EncryptionConfigError, match=problem):
        Keyring.parse(text, source="OPSGATE_ENCRYPTION_KEYS")


def test_keys_from_the_environment_or_a_file(tmp_path: Path) -> None:
    ring = keyring("a", "b")
    file = tmp_path / "keys"
    file.write_text("# rotated 2026-11\n" + ring.dumps())
    from_file = load_keyring({"OPSGATE_ENCRYPTION_KEY_FILE": str(file)})
    assert from_file is not None and from_file.current == "a" and set(from_file.keys) == {"a", "b"}
    from_env = load_keyring({"OPSGATE_ENCRYPTION_KEYS": ring.dumps().replace("\n", ",")}, file)
    assert from_env == from_file
    assert load_keyring({}) is None
    with pytest.raises(EncryptionConfigError, match="cannot read key file"):
        load_keyring({}, tmp_path / "missing")


def test_seal_record_never_keeps_a_plain_body() -> None:
    record = make_trace(1, request_body=PROMPT, response_body=b"the answer")
    sealed = seal_record(BodyCipher(keyring("k1")), record)
    assert record.request_body == PROMPT, "the hot path's record is left alone"
    assert is_sealed(sealed.request_body) and is_sealed(sealed.response_body)
    dropped = seal_record(None, record)
    assert dropped.request_body is None and dropped.response_body is None
    assert seal_record(None, make_trace(2)) == make_trace(2)


async def test_concurrent_first_starts_agree_on_one_key_file(tmp_path: Path) -> None:
    path = tmp_path / "opsgate.db.key"
    made = await asyncio.gather(*(asyncio.to_thread(create_key_file, path) for _ in range(8)))
    assert len({ring.dumps() for ring in made}) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _names(tmp_path) == ["opsgate.db.key"], "no temp files left"


def test_no_key_policy(tmp_path: Path) -> None:
    """SQLite: a key file is made beside the database; PostgreSQL: start-up is refused;
    nothing to store: no cipher and no file."""

    def config(url: str, store_bodies: str = "full") -> object:
        data = {"traces": {"store_bodies": store_bodies}}
        return parse_config(data, source="<t>", env={"OPSGATE_DATABASE_URL": url})

    sqlite_url = f"sqlite:///{tmp_path}/opsgate.db"
    assert resolve_cipher(config(sqlite_url, "off"), {}) is None  # type: ignore[arg-type]
    assert not (tmp_path / "opsgate.db.key").exists()
    made = resolve_cipher(config(sqlite_url), {})  # type: ignore[arg-type]
    assert made is not None and (tmp_path / "opsgate.db.key").exists()
    again = resolve_cipher(config(sqlite_url, "off"), {})  # type: ignore[arg-type]
    assert again is not None and again.current_key_id == made.current_key_id, "the file is reused"
    with pytest.raises(EncryptionConfigError, match="OPSGATE_ENCRYPTION_KEYS"):
        resolve_cipher(config("postgresql://u@127.0.0.1/db"), {})  # type: ignore[arg-type]
    env = {"OPSGATE_ENCRYPTION_KEYS": keyring("prod").dumps().strip()}
    chosen = resolve_cipher(config("postgresql://u@127.0.0.1/db"), env)  # type: ignore[arg-type]
    assert chosen is not None and chosen.current_key_id == "prod"


async def test_the_writer_seals_what_it_journals(tmp_path: Path) -> None:
    """The store is down: every record goes to the journal, and the journal holds no prompt."""
    cipher = BodyCipher(keyring("k1"))
    engine = make_engine(f"postgresql://nobody@127.0.0.1:{dead_port()}/none")
    journal = tmp_path / "journal.jsonl"
    writer = TraceWriter(
        SqlTraceStore(engine),
        journal,
        flush_interval=0.01,
        retry_min=30,
        seal=lambda r: seal_record(cipher, r),
    )
    await writer.start()
    try:
        for i in range(5):
            writer.submit(make_trace(i, request_body=PROMPT, response_body=b"violet heron reply"))
        await writer.flush()
    finally:
        await writer.stop()
        await dispose_engine(engine)
    raw = _read_all(tmp_path, journal.name)
    assert writer.stats().spilled == 5
    assert raw.count(b"\n") >= 5 and b"violet" not in raw and b"heron" not in raw
    files = [f for f in (journal, writer.journal.replaying) if f.exists()]
    replayed = [
        r for f in files async for batch in writer.journal.read_batches(f, 9) for r in batch
    ]
    assert [open_record(cipher, r)[0] for r in replayed] == [PROMPT] * 5


async def _bodies(url: str) -> list[tuple[str, bytes | None, bytes | None]]:
    engine = make_engine(url)
    try:
        stmt = select(traces.c.trace_id, traces.c.request_body, traces.c.response_body)
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(traces.c.trace_id))).all()
    finally:
        await dispose_engine(engine)
    return [(t, bytes(q) if q else None, bytes(r) if r else None) for t, q, r in rows]


async def test_rotation_reseals_every_body_under_the_new_key(
    backend: Backend, sql_store: SqlTraceStore
) -> None:
    old = keyring("k-old")
    first = BodyCipher(old)
    records = [
        seal_record(first, make_trace(i, request_body=PROMPT, response_body=f"a{i}".encode()))
        for i in range(7)
    ]
    records.append(make_trace(7, request_body=b"stored before encryption"))
    records.append(make_trace(8))  # no bodies
    await sql_store.write_batch(records)

    new = keyring("k-new")
    both = BodyCipher(Keyring({**new.keys, **old.keys}, "k-new"))
    report = await reseal_all(sql_store.engine, both, batch=3)
    assert report.failures == [] and report.rows_checked == 8
    assert report.bodies_resealed == 7 * 2 + 1
    stored = await _bodies(backend.url)
    sealed_bodies = [b for _, q, r in stored for b in (q, r) if b is not None]
    assert len(sealed_bodies) == 15 and {key_id_of(b) for b in sealed_bodies} == {"k-new"}
    only_new = BodyCipher(new)
    for trace_id, request, response in stored:
        if request is not None:
            assert only_new.open(request, trace_id, "request_body") in (
                PROMPT,
                b"stored before encryption",
            )
        if response is not None:
            assert only_new.open(response, trace_id, "response_body").startswith(b"a")
    again = await reseal_all(sql_store.engine, both)
    assert again.bodies_resealed == 0, "nothing left to do"


async def test_rotation_without_the_old_key_names_what_it_cannot_open(
    backend: Backend, sql_store: SqlTraceStore
) -> None:
    gone = BodyCipher(keyring("k-gone"))
    await sql_store.write_batch([seal_record(gone, make_trace(1, request_body=PROMPT))])
    engine = sql_store.engine
    async with engine.begin() as conn:  # an old row copied onto another trace id
        row = (await conn.execute(select(traces.c.request_body))).scalar_one()
    await sql_store.write_batch([make_trace(2)])
    async with engine.begin() as conn:
        await conn.execute(
            update(traces).where(traces.c.trace_id == "tr-000002").values(request_body=row)
        )
    report = await reseal_all(engine, BodyCipher(keyring("k-now")))
    assert report.bodies_resealed == 0 and len(report.failures) == 2
    assert all("key 'k-gone', which is not configured" in line for line in report.failures)
    stored = await _bodies(backend.url)
    assert all(key_id_of(q) == "k-gone" for _, q, _ in stored if q), "left as they were"
