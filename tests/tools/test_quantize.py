"""`opsgate local quantize`: the bundled SmolLM2 Q4_1 GGUF requantised by llama.cpp into other
types, checked from the files themselves (header tensor types, llama.cpp's own metadata, a
generation); bad input refused before llama.cpp is asked. The requantising tests need the
`local` extra and skip without it, like tests/providers/test_llamacpp_http.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsgate.cli.main import app
from opsgate.tools.quantize import (
    QuantizeError,
    output_path,
    parse_kinds,
    quantize,
    stored_as,
    tensor_types,
)
from tests.providers.test_llamacpp_http import local_gguf


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quant")
    return {q.kind: q.path for q in quantize(local_gguf(), folder, ["Q8_0", "Q4_0"], threads=2)}


def test_each_type_is_written_and_stores_what_it_says(made: dict[str, Path]) -> None:
    source = Path(local_gguf())
    assert sorted(made) == ["Q4_0", "Q8_0"]
    assert made["Q8_0"].name == "SmolLM2-135M-Instruct.Q8_0.gguf"
    q8, q4 = tensor_types(made["Q8_0"]), tensor_types(made["Q4_0"])
    assert set(q8) == {"Q8_0", "F32"}  # every 2-D weight at 8 bits, norms in F32
    assert "Q4_0" in q4 and "Q4_1" not in q4
    assert "Q4_1" in tensor_types(source)
    # 8.5 bits per weight > Q4_1's 5 > Q4_0's 4.5 (blocks of 32 with their scales)
    assert made["Q8_0"].stat().st_size > source.stat().st_size > made["Q4_0"].stat().st_size
    assert stored_as(q8) == "Q8_0 100%"


def test_a_requantised_file_loads_and_generates(made: dict[str, Path]) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=str(made["Q4_0"]), n_ctx=256, n_threads=2, verbose=False)
    try:
        assert llm.metadata["general.file_type"] == "2"  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_0
        reply = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)
        assert reply["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_files_already_there_are_kept_unless_overwrite(made: dict[str, Path]) -> None:
    folder = made["Q8_0"].parent
    before = made["Q8_0"].stat().st_mtime_ns
    (again,) = quantize(local_gguf(), folder, ["q8_0"])
    assert again.reused and again.path.stat().st_mtime_ns == before
    (redone,) = quantize(local_gguf(), folder, ["Q8_0"], overwrite=True)
    assert not redone.reused and redone.path.stat().st_mtime_ns != before
    assert not list(folder.glob("*.part"))


def test_bad_input_is_refused_before_llama_cpp(tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match=r"unknown quantisation Q9_9; choose from F16, "):
        parse_kinds("Q8_0, q9_9")
    with pytest.raises(QuantizeError, match="no quantisation given"):
        parse_kinds(" , ")
    assert parse_kinds("q8_0, Q4_0,Q8_0") == ["Q8_0", "Q4_0"]
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(QuantizeError, match=r"is not a GGUF file \(it does not start with"):
        quantize(fake, tmp_path / "out", ["Q8_0"])
    with pytest.raises(QuantizeError, match="does not exist"):
        quantize(tmp_path / "missing.gguf", tmp_path / "out", ["Q8_0"])
    assert not (tmp_path / "out").exists()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF\x03\x00\x00\x00\x01")
    with pytest.raises(QuantizeError, match="cut short"):
        tensor_types(cut)


def test_output_names_replace_the_source_type(tmp_path: Path) -> None:
    src = Path("/m/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert output_path(src, tmp_path, "Q2_K") == tmp_path / "SmolLM2-135M-Instruct.Q2_K.gguf"
    assert output_path(Path("/m/tiny.gguf"), tmp_path, "F16") == tmp_path / "tiny.F16.gguf"


def test_the_cli_reports_bad_input_with_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not gguf")
    runner = CliRunner()
    args = ["local", "quantize", "Q8_0", "--out", str(tmp_path / "o"), "--source", str(fake)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "is not a GGUF file" in result.output
    args = ["local", "quantize", "Q7", "--out", str(tmp_path / "o"), "--source", str(fake)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "unknown quantisation Q7" in result.output
