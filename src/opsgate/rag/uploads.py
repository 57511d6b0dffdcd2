"""Ingest request bodies: JSON (`{"documents": [...]}`) or multipart/form-data (files plus
optional `tags`, `acl`, `owner`, `end_user` fields applied to every file). Multipart is parsed
with the standard library's email parser from a body already read under the size cap."""

from __future__ import annotations

import base64
import binascii
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsgate.errors import BadRequestError
from opsgate.identity import check_end_user
from opsgate.rag.ingest import Upload

MAX_FILES = 10_000


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=1024)
    text: str | None = None
    content_base64: str | None = None
    content_type: str | None = None
    format: str | None = Field(default=None, pattern="^(text|markdown|html|pdf)$")
    title: str | None = Field(default=None, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    acl: list[str] = Field(default_factory=list, max_length=1000)
    owner: str | None = None
    end_user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_content(self) -> DocumentIn:
        if (self.text is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of text and content_base64")
        return self


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_FILES)


ACL_PREFIXES = ("team:", "user:", "key:", "role:")


def check_acl(entries: list[str], param: str) -> tuple[str, ...]:
    for entry in entries:
        if not entry.startswith(ACL_PREFIXES) or len(entry) > 200:
            raise BadRequestError(
                f"ACL entry {entry!r} must be team:<id>, user:<id>, key:<id> or role:<role>",
                code="invalid_acl",
                param=param,
            )
    return tuple(entries)


def uploads_from_json(body: IngestBody) -> list[Upload]:
    out = []
    for i, doc in enumerate(body.documents):
        if doc.text is not None:
            data = doc.text.encode()
        else:
            try:
                data = base64.b64decode(doc.content_base64 or "", validate=True)
            except (binascii.Error, ValueError):
                raise BadRequestError(
                    "content_base64 is not valid base64",
                    code="invalid_base64",
                    param=f"documents.{i}.content_base64",
                ) from None
        if doc.end_user is not None:
            check_end_user(doc.end_user)
        out.append(
            Upload(
                path=doc.path,
                data=data,
                content_type=doc.content_type,
                format=doc.format,
                title=doc.title,
                tags=tuple(doc.tags),
                acl=check_acl(doc.acl, f"documents.{i}.acl"),
                owner=doc.owner,
                end_user=doc.end_user,
                meta=dict(doc.metadata),
            )
        )
    return out


def uploads_from_multipart(content_type: str, body: bytes) -> list[Upload]:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise BadRequestError("the multipart body cannot be parsed", code="invalid_multipart")
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes, str | None]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload: Any = part.get_payload(decode=True) or b""
        if filename:
            files.append((filename, bytes(payload), part.get_content_type()))
        elif isinstance(name, str):
            fields[name] = bytes(payload).decode("utf-8", "replace")
    if not files:
        raise BadRequestError("the multipart body has no file parts", code="no_files")
    unknown = sorted(set(fields) - {"tags", "acl", "owner", "end_user", "prefix"})
    if unknown:
        raise BadRequestError(
            f"unknown multipart fields: {', '.join(unknown)}", code="unknown_field"
        )
    tags = tuple(t.strip() for t in fields.get("tags", "").split(",") if t.strip())
    acl = check_acl([a.strip() for a in fields.get("acl", "").split(",") if a.strip()], "acl")
    end_user = fields.get("end_user") or None
    if end_user is not None:
        check_end_user(end_user)
    prefix = fields.get("prefix", "")
    return [
        Upload(
            path=prefix + name,
            data=data,
            content_type=None if kind == "application/octet-stream" else kind,
            tags=tags,
            acl=acl,
            owner=fields.get("owner") or None,
            end_user=end_user,
        )
        for name, data, kind in files
    ]
