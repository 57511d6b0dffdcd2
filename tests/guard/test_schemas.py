"""Per-model input schemas without a server: which messages are checked, how content parts
are read, the path and keyword a violation reports."""

from __future__ import annotations

from opsgate.config.guard import ModelGuardConfig
from opsgate.guard.schemas import InputSchemas, json_path, message_text

SCHEMA = {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}


def test_only_user_messages_of_the_model_are_checked() -> None:
    schemas = InputSchemas({"m": ModelGuardConfig(input_schema=SCHEMA)})
    good = [
        {"role": "system", "content": "not json, not checked"},
        {
            "role": "user",
            "content": [{"type": "text", "text": '{"q":'}, {"type": "text", "text": '"x"}'}],
        },
        {"role": "assistant", "content": "free text"},
    ]
    assert schemas.check("m", good) is None
    assert schemas.check("other", [{"role": "user", "content": "anything"}]) is None
    bad = [*good, {"role": "user", "content": '{"q": 3}'}]
    found = schemas.check("m", bad)
    assert found is not None and found.error is not None
    assert found.verdict.to_json() == {
        "check": "schema",
        "stage": "input",
        "action": "block",
        "types": {"type": 1},
    }
    assert found.error.param == "messages[3].content" and "at $.q:" in found.error.message
    image_only = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    missing = schemas.check("m", image_only)
    assert missing is not None and missing.verdict.types == (("not_json", 1),)


def test_paths_and_text() -> None:
    assert json_path(["items", 2, "qty"]) == "$.items[2].qty" and json_path([]) == "$"
    assert message_text("a") == "a" and message_text(None) is None
    assert message_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    flagged = InputSchemas(
        {"m": ModelGuardConfig(input_schema=SCHEMA, input_schema_action="flag")}
    ).check("m", [{"role": "user", "content": "{}"}])
    assert flagged is not None and flagged.error is None and flagged.verdict.action == "flag"
