"""Loading a config: file or built-in default, `${ENV}` interpolation, environment settings.

Errors come back as `ConfigError` holding one line per problem, each with the file and the
field's path, so `opsgate config check` and start-up can print exactly what to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsgate.config.defaults import default_config_data
from opsgate.config.schema import Config

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# `${VAR}` is not valid inside a YAML flow mapping (`{api_key: ${KEY}}`), so before parsing each
# reference is swapped for a plain token that any YAML position accepts, and swapped back after.
_TOKEN = re.compile(r"opsgateenv([0-9a-f]+)x")


def _protect(text: str) -> str:
    return _VAR.sub(lambda m: f"opsgateenv{m.group(0).encode().hex()}x", text)


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists each one as `path: message`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _interpolate(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, _join(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "opsgateenv" in node:
        node = _TOKEN.sub(lambda m: bytes.fromhex(m.group(1)).decode(), node)
    if isinstance(node, str) and "${" in node:

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path or '<root>'}: environment variable {name} is not set")
            return ""

        return _VAR.sub(sub, node)
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out or "<root>"


def _settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field, var in (
        ("database_url", "OPSGATE_DATABASE_URL"),
        ("redis_url", "OPSGATE_REDIS_URL"),
        ("master_key", "OPSGATE_MASTER_KEY"),
    ):
        if env.get(var):
            found[field] = env[var]
    return found


def parse_config(data: Any, *, source: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate already-decoded config data; environment settings override the file's."""
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["<root>: expected a mapping of settings"])
    problems: list[str] = []
    data = _interpolate(data, env, "", problems)
    settings = dict(data.get("settings") or {})
    settings.update(_settings_from_env(env))
    data["settings"] = settings
    if env.get("OPSGATE_PORT"):
        data["server"] = {**(data.get("server") or {}), "port": env["OPSGATE_PORT"]}
    if problems:
        raise ConfigError(source, problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source, [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        ) from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load `path`, else $OPSGATE_CONFIG, else the built-in default (simulator + env keys)."""
    env = os.environ if env is None else env
    if path is None and env.get("OPSGATE_CONFIG"):
        path = env["OPSGATE_CONFIG"]
    if path is None:
        return parse_config(default_config_data(env), source="<built-in default>", env=env)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, ["file is not valid UTF-8"]) from None
    try:
        data = yaml.safe_load(_protect(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            source, [f"{where}invalid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_config(data, source=source, env=env)
