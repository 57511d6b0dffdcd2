"""The llamacpp provider's config check (no model loaded): a file that is not GGUF, a missing
file and bad options are caught at config time; the default config's `local-small`."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsgate.config import ConfigError, load_config, parse_config
from opsgate.config.defaults import bundled_gguf
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.llamacpp import LlamaCppProvider, gguf_problem
from opsgate.routing.build import check_providers


def deployment(**options: object) -> DeploymentConfig:
    return DeploymentConfig(provider="llamacpp", model="m", options=options)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf at all")
    problems = LlamaCppProvider.check(deployment(model_path=str(fake)))
    assert f"options.model_path: {fake} is not a GGUF file (it does not start with 'GGUF')" in (
        problems
    )


def test_a_missing_file_and_bad_options_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    assert (
        gguf_problem(str(missing))
        == f"options.model_path: {missing} does not exist or is not a file"
    )
    problems = LlamaCppProvider.check(deployment(model_path=str(missing), concurrency=0))
    assert any(p.startswith("options.concurrency:") for p in problems)
    assert LlamaCppProvider.check(deployment()) == ["options.model_path: Field required"]


def test_config_check_names_the_deployment(tmp_path: Path) -> None:
    fake = tmp_path / "weights.bin"
    fake.write_bytes(b"\x00" * 64)
    data = {
        "models": [
            {
                "name": "local",
                "deployments": [
                    {"provider": "llamacpp", "model": "m", "options": {"model_path": str(fake)}}
                ],
            }
        ]
    }
    cfg = parse_config(data, source="t.yaml", env={})
    with pytest.raises(ConfigError, match="not a GGUF file"):
        check_providers(cfg, "t.yaml")


def test_default_config_gains_local_small_with_the_extra() -> None:
    gguf = bundled_gguf()
    names = [m.name for m in load_config(env={}).models]
    assert ("local-small" in names) == (gguf is not None)
    off = [m.name for m in load_config(env={"OPSGATE_LOCAL_MODEL": "off"}).models]
    assert "local-small" not in off
    if gguf is not None:
        assert gguf_problem(gguf) is None
        cfg = load_config(env={})
        check_providers(cfg, "default")
        (group,) = [m for m in cfg.models if m.name == "local-small"]
        assert group.deployments[0].provider == "llamacpp"
        assert Path(gguf).stat().st_size == 98_362_432
