"""Encryption at rest for stored bodies: AES-256-GCM envelopes under named keys.

A sealed body is an envelope, `MAGIC | version | len(kid) | kid | nonce | ciphertext+tag`. The key
id travels with the data, so keys can rotate: new bodies use the current (first) key, old ones
stay readable while their key is configured, and `opsgate keys rotate-encryption` re-seals them.
The additional data binds the envelope's header, the trace id and the field, so a ciphertext
copied onto another row (or from request to response) fails to open instead of lying.

Keys come from `OPSGATE_ENCRYPTION_KEYS` (`kid1:base64,kid2:base64`, the first is current), else
a key file (`OPSGATE_ENCRYPTION_KEY_FILE` or `encryption.key_file`: the same entries, one a line).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.store.crypto")

MAGIC = b"\x00ogb"
"""No JSON or text body starts with NUL, so a sealed body is never mistaken for a plain one."""
VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
KEYS_ENV = "OPSGATE_ENCRYPTION_KEYS"
KEY_FILE_ENV = "OPSGATE_ENCRYPTION_KEY_FILE"
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

BodyField = Literal["request_body", "response_body"]
BODY_FIELDS: tuple[BodyField, ...] = ("request_body", "response_body")


class EncryptionConfigError(ValueError):
    """The configured keys cannot be used (malformed, wrong length, duplicated)."""


class DecryptionError(Exception):
    """A sealed body that cannot be opened: its key is not configured, or it was altered."""

    def __init__(self, message: str, *, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class Keyring:
    """Named AES-256 keys; `current` seals, every key opens."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise EncryptionConfigError(f"current key {self.current!r} is not in the keyring")

    @classmethod
    def parse(cls, text: str, *, source: str) -> Keyring:
        """Entries `kid:base64key`, separated by commas or lines; `#` starts a comment."""
        keys: dict[str, bytes] = {}
        for raw in re.split(r"[,\n]", text):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            kid, sep, encoded = entry.partition(":")
            kid = kid.strip()
            if not sep or not _KID.match(kid):
                raise EncryptionConfigError(
                    f"{source}: each key is `id:base64` with an id of letters, digits, . _ -"
                )
            if kid in keys:
                raise EncryptionConfigError(f"{source}: key id {kid!r} is given twice")
            keys[kid] = _decode_key(encoded.strip(), kid, source)
        if not keys:
            raise EncryptionConfigError(f"{source}: no keys")
        return cls(keys, next(iter(keys)))

    @classmethod
    def generate(cls, kid: str | None = None) -> Keyring:
        kid = kid or f"k{secrets.token_hex(4)}"
        return cls({kid: AESGCM.generate_key(bit_length=256)}, kid)

    def dumps(self) -> str:
        """The key-file form, current key first."""
        order = [self.current, *(k for k in self.keys if k != self.current)]
        return "".join(f"{k}:{base64.b64encode(self.keys[k]).decode()}\n" for k in order)


def _decode_key(encoded: str, kid: str, source: str) -> bytes:
    try:
        key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionConfigError(f"{source}: key {kid!r} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise EncryptionConfigError(
            f"{source}: key {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return key


def is_sealed(blob: bytes | None) -> bool:
    return blob is not None and blob[: len(MAGIC)] == MAGIC


def key_id_of(blob: bytes) -> str | None:
    """The key id a sealed body names (None for a plain body)."""
    if not is_sealed(blob):
        return None
    return _split(blob)[1]


def _split(blob: bytes) -> tuple[bytes, str, bytes, bytes]:
    """(header, key id, nonce, ciphertext) of an envelope; DecryptionError when malformed."""
    start = len(MAGIC)
    if len(blob) < start + 2 or blob[start] != VERSION:
        raise DecryptionError("not a sealed body of a known version")
    kid_len = blob[start + 1]
    header_end = start + 2 + kid_len
    if len(blob) < header_end + NONCE_BYTES + 16:
        raise DecryptionError("sealed body is truncated")
    kid = blob[start + 2 : header_end].decode("ascii", "replace")
    nonce = blob[header_end : header_end + NONCE_BYTES]
    return blob[:header_end], kid, nonce, blob[header_end + NONCE_BYTES :]


def _aad(header: bytes, trace_id: str, field: BodyField) -> bytes:
    return b"\x00".join((header, trace_id.encode("utf-8", "replace"), field.encode()))


class BodyCipher:
    """Seals and opens the bodies of one trace row."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._aead = {kid: AESGCM(key) for kid, key in keyring.keys.items()}

    @property
    def current_key_id(self) -> str:
        return self.keyring.current

    def seal(self, body: bytes, trace_id: str, field: BodyField) -> bytes:
        kid = self.keyring.current.encode("ascii")
        header = MAGIC + bytes((VERSION, len(kid))) + kid
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.keyring.current].encrypt(
            nonce, body, _aad(header, trace_id, field)
        )
        return header + nonce + sealed

    def open(self, blob: bytes, trace_id: str, field: BodyField) -> bytes:
        """The plain body. A body stored before encryption (no envelope) comes back as is."""
        if not is_sealed(blob):
            return blob
        header, kid, nonce, ciphertext = _split(blob)
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(
                f"{field} of trace {trace_id} is encrypted with key {kid!r}, which is not "
                f"configured ({KEYS_ENV} or the key file); keys known: {sorted(self._aead)}",
                key_id=kid,
            )
        try:
            return aead.decrypt(nonce, ciphertext, _aad(header, trace_id, field))
        except InvalidTag:
            raise DecryptionError(
                f"{field} of trace {trace_id} does not decrypt with key {kid!r}: it was altered "
                "or belongs to another row",
                key_id=kid,
            ) from None

    def needs_reseal(self, blob: bytes | None) -> bool:
        """Whether a stored body is plain or under a key other than the current one."""
        return blob is not None and key_id_of(blob) != self.keyring.current


def seal_record(cipher: BodyCipher | None, record: TraceRecord) -> TraceRecord:
    """The record with its bodies sealed; without a cipher the bodies are dropped, never kept
    in plain text. The original record is left untouched (the hot path may still hold it)."""
    if record.request_body is None and record.response_body is None:
        return record
    if cipher is None:
        log.error(
            "trace %s has bodies but no encryption key is set; bodies dropped", record.trace_id
        )
        return dataclasses.replace(record, request_body=None, response_body=None)
    sealed: dict[str, bytes | None] = {}
    for name in BODY_FIELDS:
        body = getattr(record, name)
        sealed[name] = None if body is None else cipher.seal(body, record.trace_id, name)
    return dataclasses.replace(record, **sealed)  # type: ignore[arg-type]


# --- where keys come from --------------------------------------------------------------------


def load_keyring(env: Mapping[str, str], key_file: str | Path | None = None) -> Keyring | None:
    """Keys from the environment, else from a key file that exists; None when neither is set."""
    if env.get(KEYS_ENV):
        return Keyring.parse(env[KEYS_ENV], source=KEYS_ENV)
    path = env.get(KEY_FILE_ENV) or key_file
    if not path:
        return None
    return read_key_file(Path(path))


def read_key_file(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EncryptionConfigError(f"{path}: cannot read key file: {exc.strerror}") from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("encryption key file %s is readable by other users; chmod 600 it", path)
    return Keyring.parse(text, source=str(path))


def create_key_file(path: Path) -> Keyring:
    """Write a new key file (mode 0600) unless one appeared meanwhile; return what is there.

    The file is written aside and linked into place, so processes starting together agree on
    one key and none ever reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, keyring.dumps().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return read_key_file(path)
    finally:
        tmp.unlink(missing_ok=True)
    return keyring


def open_body(cipher: BodyCipher | None, blob: bytes, trace_id: str, field: BodyField) -> bytes:
    """One stored body in plain bytes (a body from before encryption comes back as is)."""
    if not is_sealed(blob):
        return blob
    if cipher is None:
        raise DecryptionError(
            f"{field} of trace {trace_id} is encrypted with key {key_id_of(blob)!r} but no "
            f"encryption keys are configured ({KEYS_ENV})",
            key_id=key_id_of(blob),
        )
    return cipher.open(blob, trace_id, field)


def open_record(
    cipher: BodyCipher | None, record: TraceRecord
) -> tuple[bytes | None, bytes | None]:
    """(request body, response body) in plain bytes; DecryptionError when one cannot be opened."""
    opened: list[bytes | None] = []
    for name in BODY_FIELDS:
        body = getattr(record, name)
        opened.append(None if body is None else open_body(cipher, body, record.trace_id, name))
    return opened[0], opened[1]
