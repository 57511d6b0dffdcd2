from pathlib import Path

import pytest

from opsgate.config import ConfigError, load_config, parse_config
from opsgate.routing.build import check_providers

GOOD = """
models:
  - name: chat-default
    deployments:
      - provider: openai
        api_key: ${OPENAI_API_KEY}
        model: gpt-4o-mini
        price: {input: 0.15, output: 0.60}
        tags: [public]
      - provider: openai
        base_url: http://127.0.0.1:8000/v1
        model: meta-llama/Llama-3.1-8B-Instruct
        tags: [private, on-prem]
  - name: claude
    deployments:
      - {provider: anthropic, api_key: ${ANTHROPIC_API_KEY}, model: claude-sonnet-4-5}
router:
  strategy: least-latency
  retries: 2
  fallbacks: {chat-default: [claude]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsgate.yaml"
    path.write_text(text)
    return path


def test_issue_example_loads_with_env_interpolation(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "ak-2"}
    cfg = load_config(write(tmp_path, GOOD), env=env)
    dep = cfg.models[0].deployments[0]
    assert dep.api_key is not None and dep.api_key.get_secret_value() == "sk-1"
    assert str(dep.price.input) == "0.15" if dep.price else False
    assert cfg.router.fallbacks == {"chat-default": ["claude"]}
    assert "sk-1" not in repr(cfg), "secrets never show in reprs or logs"
    check_providers(cfg, "x")


def test_missing_env_var_is_an_error_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), env={"OPENAI_API_KEY": "sk"})
    assert info.value.problems == [
        "models[1].deployments[0].api_key: environment variable ANTHROPIC_API_KEY is not set"
    ]


def test_default_value_syntax() -> None:
    data = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "x",
                        "base_url": "${URL:-http://127.0.0.1:1/v1}",
                    }
                ],
            }
        ]
    }
    cfg = parse_config(data, source="t", env={})
    assert cfg.models[0].deployments[0].base_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models: [{name: m, deployments: [{provider: openai, model: x, wieght: 2}]}]",
            "models[0].deployments[0].wieght: Extra inputs are not permitted",
        ),
        (
            "models: [{name: m, deployments: []}]",
            "models[0].deployments: List should have at least 1 item after validation, not 0",
        ),
        (
            "models: [{name: m, deployments: [{provider: openai, model: x, timeout: -1}]}]",
            "models[0].deployments[0].timeout: Input should be greater than 0",
        ),
        (
            "router: {strategy: fastest}",
            "router.strategy: Input should be 'weighted', 'least-latency', 'least-busy' or "
            "'lowest-cost'",
        ),
        (
            "models: [{name: m, deployments: [{provider: openai, model: x, base_url: ftp://h}]}]",
            "models[0].deployments[0].base_url: Value error, must start with http:// or https://",
        ),
        ("models: {a: 1}", "models: Input should be a valid list"),
        ("- just\n- a list", "<root>: expected a mapping of settings"),
        ("models: [\n  {name: [}", "line 2, column 11: invalid YAML"),
    ],
)
def test_invalid_files_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
    assert info.value.source.endswith("opsgate.yaml")


def test_cross_field_checks() -> None:
    dup = {"models": [{"name": "m", "deployments": [{"provider": "openai", "model": "x"}]}] * 2}
    with pytest.raises(ConfigError, match="repeated: m"):
        parse_config(dup, source="t", env={})
    bad_fallback = {
        "models": [{"name": "m", "deployments": [{"provider": "openai", "model": "x"}]}],
        "router": {"fallbacks": {"m": ["ghost"]}},
    }
    with pytest.raises(ConfigError, match="unknown model 'ghost'"):
        parse_config(bad_fallback, source="t", env={})


def test_provider_phase_two_checks() -> None:
    data = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {"provider": "nope", "model": "x"},
                    {"provider": "azure", "model": "x"},
                    {"provider": "simulator", "model": "x", "options": {"ttft_ms": -5}},
                ],
            },
            {
                "name": "e",
                "kind": "embedding",
                "deployments": [{"provider": "anthropic", "model": "c"}],
            },
        ]
    }
    cfg = parse_config(data, source="t", env={})
    with pytest.raises(ConfigError) as info:
        check_providers(cfg, "t")
    problems = info.value.problems
    assert problems[0].startswith("models[0].deployments[0].provider: unknown provider 'nope'")
    assert "models[0].deployments[1].base_url: required for Azure OpenAI" in problems
    assert any(p.startswith("models[0].deployments[2].options.ttft_ms") for p in problems)
    assert "models[1].deployments[0].provider: 'anthropic' does not serve embeddings" in problems


def test_environment_settings_override_file() -> None:
    env = {
        "OPSGATE_DATABASE_URL": "postgresql://h/db",
        "OPSGATE_MASTER_KEY": "mk",
        "OPSGATE_PORT": "9000",
        "OPSGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    cfg = parse_config({"settings": {"database_url": "sqlite:///x.db"}}, source="t", env=env)
    assert cfg.settings.database_url == "postgresql://h/db"
    assert cfg.server.port == 9000
    assert cfg.settings.master_key is not None


def test_default_config_has_simulator_and_env_providers() -> None:
    cfg = load_config(env={"OPSGATE_LOCAL_MODEL": "off"})  # local-small: test_llamacpp_check
    assert [m.name for m in cfg.models] == ["chat-default", "embed-default"]
    cfg = load_config(
        env={
            "OPENAI_API_KEY": "sk",
            "ANTHROPIC_API_KEY": "ak",
            "OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1",
            "OLLAMA_MODEL": "llama3",
        }
    )
    names = [m.name for m in cfg.models]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "llama3"} <= set(names)
    check_providers(cfg, "default")


def test_config_file_from_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, "models: [{name: only, deployments: [{provider: simulator, model: s}]}]")
    cfg = load_config(env={"OPSGATE_CONFIG": str(path)})
    assert [m.name for m in cfg.models] == ["only"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml", env={})
