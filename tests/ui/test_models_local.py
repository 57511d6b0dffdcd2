"""The Models page shows a local (`llamacpp`) deployment in real headless Chromium: the GGUF
file's path, its size on disk, its quantisation and the concurrency limits. With the real
SmolLM2 GGUF of the `local` extra (skipped without it, as the provider's own tests are): once
under its own name, once through a link named without any quantisation, where only the file's
header can say it. Screenshot: test-output/ui-screenshots/65-models-local.png."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from opsgate.config.defaults import SMOLLM2_GGUF
from opsgate.providers.gguf import GGUFError, quantisation_from_name, read_gguf
from tests.fixtures.gateway import GatewayServer, make_config
from tests.providers.test_llamacpp_http import local_gguf
from tests.ui.test_browser import _login, _page, browser, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration
__all__ = ["browser"]

MASTER = "mk-models-local-test-0123456789"


def test_the_models_page_shows_the_local_model_file(browser: Browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    gguf = local_gguf()
    renamed = tmp_path / "model.gguf"
    renamed.symlink_to(gguf)
    local = {"provider": "llamacpp", "model": "smollm2-135m-instruct"}
    config = {
        "models": [
            {
                "name": "local-small",
                "deployments": [
                    {**local, "id": "local-a", "options": {"model_path": gguf, "concurrency": 2}},
                    {
                        **local,
                        "id": "local-b",
                        "options": {"model_path": str(renamed), "max_waiting": 3},
                    },
                ],
            },
            {"name": "sim", "deployments": [{"provider": "simulator", "model": "s", "id": "sim"}]},
        ],
        "traces": {"flush_interval": 0.05},
    }
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/gw.db", "OPSGATE_MASTER_KEY": MASTER}
    with GatewayServer(make_config(config, env)) as gw:
        errors: list[str] = []
        page = _page(browser, errors)
        _login(page, gw.base, MASTER)
        page.click("header nav >> text=Models")

        expected = quantisation_from_name(SMOLLM2_GGUF)
        assert expected is not None
        a = page.locator("#local-local-a")
        expect(a.locator(".model-path")).to_have_text(gguf)
        size = os.path.getsize(gguf)
        assert a.locator(".model-size").get_attribute("title") == f"{size} bytes"
        expect(a.locator(".model-size")).to_have_text(f"{size / 10**6:,.1f} MB")
        expect(a.locator(".model-quant")).to_have_text(expected)
        expect(a.locator(".model-concurrency")).to_have_text("2")
        expect(a).to_contain_text("up to 16 waiting")
        expect(a).to_contain_text("llama")

        b = page.locator("#local-local-b")
        expect(b.locator(".model-path")).to_have_text(str(renamed))
        expect(b.locator(".model-quant")).to_have_text(expected)  # the header agrees
        expect(b).to_contain_text("(from the header)")
        expect(b.locator(".model-concurrency")).to_have_text("1")
        expect(b).to_contain_text("up to 3 waiting")
        assert page.locator("#local-sim").count() == 0  # the simulator is no local model
        shot(page, "65-models-local")
        assert errors == [], f"browser errors: {errors}"
        page.context.close()


def test_quantisation_from_names_and_unreadable_headers(tmp_path: Path) -> None:
    names = {
        "SmolLM2-135M-Instruct.Q4_1.gguf": "Q4_1",
        "llama-3.2-1b-instruct-q4_k_m.gguf": "Q4_K_M",
        "qwen2-0_5b-instruct-q8_0.gguf": "Q8_0",
        "phi-3-mini-IQ3_XXS.gguf": "IQ3_XXS",
        "gemma-2b-f16.gguf": "F16",
        "model.gguf": None,
        "q4-notes.gguf": None,
    }
    assert {name: quantisation_from_name(name) for name in names} == names
    not_gguf = tmp_path / "x.Q4_0.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(GGUFError, match="does not start with 'GGUF'"):
        read_gguf(not_gguf)
    cut = tmp_path / "cut.gguf"
    with open(local_gguf(), "rb") as fh:
        cut.write_bytes(fh.read(200))  # the real header, cut inside its metadata
    with pytest.raises(GGUFError, match="cut short"):
        read_gguf(cut)
