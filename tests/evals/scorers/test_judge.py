"""LLM judges against a real HTTP fake upstream answering judge prompts: valid, invalid, slow,
failing; pairwise position swapping; template versions; answer parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.scorers import Judge, Pairwise, Sample, ScorerConfigError, apply
from opsgate.evals.scorers.judge import UnparseableAnswer, parse_score, parse_winner, template
from tests.fixtures.upstream import FakeUpstream, Reply, Status

SAMPLE = Sample(
    input="Where is the head office?",
    output="In Delhi.",
    expected="Delhi",
    context="The Oberoi Group has its head office in Delhi.",
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream("judge", api_key="sk-judge") as upstream:
        yield upstream


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[GatewayClient]:
    fake.reset()
    options = ClientOptions(timeout_s=0.5, retries=1, backoff_s=0.01)
    http = GatewayClient(fake.url, "sk-judge", options)
    yield http
    await http.aclose()


def judge(client: GatewayClient, tpl: str = "faithfulness", rubric: str = "") -> Judge:
    return Judge(client, template=tpl, model="judge-model", rubric=rubric)


async def test_a_valid_answer_is_normalised_and_the_prompt_carries_the_row(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    fake.script(Reply('{"reasoning": "all supported", "score": 4}', usage=(100, 10)))
    result = await apply(judge(client), SAMPLE)
    assert (result.value, result.reason, result.error) == (0.75, "all supported", None)
    assert result.tokens == 110
    (request,) = fake.requests
    body = request.body
    assert body["model"] == "judge-model" and body["temperature"] == 0
    user = body["messages"][1]["content"]
    assert "head office in Delhi" in user and "In Delhi." in user
    assert request.headers["authorization"] == "Bearer sk-judge"


async def test_an_unreadable_answer_is_asked_again_once(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    fake.script(Reply("It looks fine to me!"), Reply('```json\n{"score": 5}\n```'))
    result = await apply(judge(client), SAMPLE)
    assert result.value == 1.0
    second = fake.requests[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": "It looks fine to me!"}
    assert "could not be read" in second[-1]["content"]


async def test_two_unreadable_answers_are_a_failed_score_not_a_crash(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    fake.script(Reply("no idea"), Reply('{"score": 11}'))
    result = await apply(judge(client), SAMPLE)
    assert result.value is None
    assert result.error is not None and "unparseable after a retry" in result.error
    assert "outside 1-5" in result.error
    assert len(fake.requests) == 2


async def test_a_slow_judge_times_out_into_a_failed_score(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    fake.script(Reply('{"score": 3}', delay=5), Reply('{"score": 3}', delay=5))
    result = await apply(judge(client), SAMPLE)
    assert result.value is None
    assert result.error is not None and "no answer from the gateway" in result.error


async def test_a_server_error_is_retried_by_the_client(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    fake.script(Status(503), Reply('{"score": 2}'))
    result = await apply(judge(client), SAMPLE)
    assert result.value == 0.25
    fake.script(Status(400, message="bad model"))
    result = await apply(judge(client), SAMPLE)
    assert result.error == "judge call failed: 400 bad model"


async def test_the_rubric_template_needs_a_rubric_and_sends_it(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    with pytest.raises(ScorerConfigError, match="needs `rubric`"):
        judge(client, "rubric")
    fake.script(Reply('{"score": 1}'))
    result = await apply(judge(client, "rubric", rubric="Must apologise."), SAMPLE)
    assert result.value == 0.0
    assert "Must apologise." in fake.requests[0].body["messages"][1]["content"]


async def test_missing_fields_fail_before_any_call(
    fake: FakeUpstream, client: GatewayClient
) -> None:
    result = await apply(judge(client), Sample(input="q", output="a"))
    assert result.error == "row has no `context` (needed by faithfulness)"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("answers", "value", "label"),
    [
        (('{"winner": "A"}', '{"winner": "B"}'), 1.0, "win"),
        (('{"winner": "B"}', '{"winner": "A"}'), 0.0, "loss"),
        (('{"winner": "A"}', '{"winner": "A"}'), 0.5, "tie"),  # always the first: no decision
        (('{"winner": "tie"}', '{"winner": "B"}'), 0.5, "tie"),
    ],
)
async def test_pairwise_swaps_positions(
    fake: FakeUpstream, client: GatewayClient, answers: tuple[str, str], value: float, label: str
) -> None:
    fake.script(*(Reply(a) for a in answers))
    result = await apply(Pairwise(client, model="judge-model"), SAMPLE)
    assert (result.value, result.label) == (value, label)
    first, second = (r.body["messages"][1]["content"] for r in fake.requests)
    assert first.index("In Delhi.") < first.index("Answer B")  # the output is A first
    assert second.index("In Delhi.") > second.index("Answer B")  # then B


def test_templates_are_versioned() -> None:
    assert template("faithfulness").ref == "faithfulness@1"
    assert template("correctness@1").needs == ("input", "output", "expected")
    with pytest.raises(ScorerConfigError, match="versions"):
        template("faithfulness@9")
    with pytest.raises(ScorerConfigError, match="unknown template"):
        template("vibes")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"reasoning": "x", "score": 3}', 0.5),
        ('Sure. {"score": 5, "reasoning": "great"} Hope that helps', 1.0),
        ("Score: 2", 0.25),
        ('{"score": "4"}', 0.75),
    ],
)
def test_parse_score(text: str, value: float) -> None:
    assert parse_score(text).value == value


@pytest.mark.parametrize("text", ["", "great answer", '{"score": 0}', '{"score": "high"}'])
def test_unparseable_scores(text: str) -> None:
    with pytest.raises(UnparseableAnswer):
        parse_score(text)


def test_parse_winner() -> None:
    assert parse_winner('{"winner": "b"}').winner == "B"
    assert parse_winner('{"winner": "Tie"}').winner == "tie"
    with pytest.raises(UnparseableAnswer):
        parse_winner('{"winner": "both"}')
