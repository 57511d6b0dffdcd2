"""The support features and metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsgate.evals.hallucination.features import FEATURE_NAMES, analyse, longest_run
from opsgate.evals.hallucination.measure import auroc, best_threshold, figures
from opsgate.evals.hallucination.text import stem, tokens

KNOWLEDGE = (
    "Bralorne is an historic Canadian gold mining community in the Bridge River District, "
    "west of the town of Lillooet. Dome Mine is situated in the City of Timmins, Ontario."
)
QUESTION = "Which gold mine is located in the Bridge River District, Bralorne or Dome Mine?"


def _named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector.tolist(), strict=True))


def test_a_hallucinated_sentence_names_its_unsupported_words() -> None:
    result = analyse(KNOWLEDGE, QUESTION, "Bralorne is located near Lillooet, BC.")
    # claim = answer content words not in the question: near, lillooet, bc
    assert result.unsupported == ("near", "bc")
    f = _named(result.vector)
    assert f["unsupported_share"] == pytest.approx(2 / 3)
    assert f["unsupported_words"] == pytest.approx(math.log(3))
    assert f["new_names"] == pytest.approx(math.log(2))  # "BC", capitalised, mid-sentence
    assert f["verbatim_span"] == 0.0


def test_a_faithful_span_is_verbatim_and_fully_supported() -> None:
    f = _named(analyse(KNOWLEDGE, "Which mine is in the City of Timmins?", "Dome Mine").vector)
    assert f["unsupported_share"] == 0.0
    assert f["claim_in_knowledge"] == 1.0  # "dome" is a run of the knowledge's content words
    assert f["verbatim_span"] == 1.0


def test_wrapping_a_faithful_answer_in_question_and_framing_words_keeps_its_claim() -> None:
    short = _named(analyse(KNOWLEDGE, QUESTION, "Bralorne").vector)
    for sentence in (
        "The answer is Bralorne.",
        "According to the text, the gold mine located in the Bridge River District is Bralorne.",
    ):
        long = _named(analyse(KNOWLEDGE, QUESTION, sentence).vector)
        assert {k: v for k, v in long.items() if k != "verbatim_span"} == {
            k: v for k, v in short.items() if k != "verbatim_span"
        }


def test_yes_no_negation_and_numbers() -> None:
    f = _named(analyse("Born in 1950.", "Was he born in 1950?", "yes").vector)
    # "yes" is the whole claim and no knowledge word: the yes_no flag lets the model tell
    assert (f["yes_no"], f["no_claim"], f["unsupported_share"]) == (1.0, 0.0, 1.0)
    f = _named(analyse("Born in 1950.", "Was he born in 1950?", "He was born in 1950.").vector)
    assert (f["yes_no"], f["no_claim"], f["unsupported_share"]) == (0.0, 1.0, 0.0)
    f = _named(analyse("Born in 1950.", "When was he born?", "He was not born in 1951.").vector)
    assert f["new_negation"] == 1.0
    assert f["new_numbers"] == pytest.approx(math.log(2))


def test_tokens_fold_case_and_accents_and_stems_meet() -> None:
    assert tokens("Moli\u00e8re\u2019s FILMS").words == ("moliere's", "films")
    assert stem("directors") == stem("director")
    assert stem("moliere's") == stem("moliere")
    assert longest_run(["a", "b", "c"], ["x", "a", "b", "y", "c"]) == 2


def test_figures_by_hand() -> None:
    scores = [0.9, 0.8, 0.4, 0.7, 0.1, 0.2]
    labels = [1, 1, 1, 0, 0, 0]
    f = figures(scores, labels, 0.5)  # flagged: .9 .8 .7 -> tp 2, fp 1, fn 1
    assert [f.precision, f.recall, f.f1] == pytest.approx([2 / 3] * 3)
    assert f.accuracy == pytest.approx(4 / 6)
    # pairs (pos, neg) won: .9>all 3, .8>all 3, .4>.1,.2 -> 8 of 9
    assert f.auroc == pytest.approx(8 / 9)
    assert auroc([0.5, 0.5], [1, 0]) == 0.5
    assert math.isnan(auroc([0.5], [1]))


def test_best_threshold_lies_between_scores() -> None:
    # flagging >= 0.4 catches all 3 positives with 1 false alarm: F1 6/7, the best
    threshold = best_threshold([0.9, 0.8, 0.4, 0.7, 0.1, 0.2], [1, 1, 1, 0, 0, 0])
    assert threshold == pytest.approx((0.4 + 0.2) / 2)
