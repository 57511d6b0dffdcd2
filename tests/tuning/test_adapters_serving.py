"""Serving LoRA adapters through an OpenAI-compatible upstream (vLLM serves a loaded adapter
under its name as the `model`): a deployment's `adapter`, a per-team adapter
(`team_adapters`) for the same public model on one shared base, streamed and not, through the
official `openai` SDK against a real fake upstream that records the model it was asked for;
a provider without adapters is a config error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from opsgate.config import ConfigError
from tests.access.helpers import MASTER, Client, World, seed
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
MSG: list[Any] = [{"role": "user", "content": "hello"}]


def _deployment(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": fake.url, "model": "llama-base", **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FakeUpstream, GatewayServer, World]]:
    with FakeUpstream() as fake:
        data = {
            "models": [
                {
                    "name": "support-bot",
                    "deployments": [
                        _deployment(
                            fake, adapter="support-shared", team_adapters={"team-a": "support-a"}
                        )
                    ],
                },
                {"name": "plain", "deployments": [_deployment(fake)]},
            ],
            "router": {"retries": 0},
            "settings": {
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                "master_key": MASTER,
            },
        }
        with GatewayServer(make_config(data)) as gw:
            yield fake, gw, seed(Client(gw.base, MASTER, gw))


def _asked(fake: FakeUpstream) -> str:
    body = fake.requests[-1].body
    assert isinstance(body, dict)
    return str(body["model"])


def test_each_team_gets_its_adapter_on_the_shared_base(
    served: tuple[FakeUpstream, GatewayServer, World],
) -> None:
    fake, gw, world = served
    for key, expected in (
        (world.keys["service:a"], "support-a"),
        (world.keys["service:b"], "support-shared"),
        (MASTER, "support-shared"),
    ):
        with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0) as client:
            answer = client.chat.completions.create(model="support-bot", messages=MSG)
            assert answer.choices[0].message.content
            assert _asked(fake) == expected
            chunks = list(
                client.chat.completions.create(model="support-bot", messages=MSG, stream=True)
            )
            assert chunks and _asked(fake) == expected
            client.chat.completions.create(model="plain", messages=MSG)
            assert _asked(fake) == "llama-base"  # no adapter: the base model itself


def test_an_adapter_on_a_provider_without_adapters_is_a_config_error() -> None:
    data = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {"provider": "anthropic", "model": "claude", "api_key": "k", "adapter": "x"}
                ],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.adapter: 'anthropic' does not"):
        GatewayServer(make_config(data))
