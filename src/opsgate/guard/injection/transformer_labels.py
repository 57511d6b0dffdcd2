"""Which output classes of a classifier mean "attack", read from its `config.id2label`.

Label names are split into words and matched case-insensitively:

- attack: INJECTION, JAILBREAK, MALICIOUS, UNSAFE, ATTACK, ADVERSARIAL, HARMFUL (also inside
  longer names: `PROMPT_INJECTION`);
- benign: SAFE, BENIGN, LEGIT(IMATE), NORMAL, CLEAN, HARMLESS, OK, or any name with NOT / NO /
  NON (`NOT_INJECTION`);
- generic names (`LABEL_0`, `LABEL_1`, `0`, `1`): with two classes, class 1 is the attack (the
  usual positive class); with one logit, the logit is the attack.

Several attack classes add up (Prompt-Guard's INJECTION + JAILBREAK). A single logit named as
the benign class is read as 1 - sigmoid. Any other name, or a model without both an attack and
a benign class, is an error that says how to fix it: rename the labels in `config.json`.
Torch is not imported here: `attack_probability` only calls tensor methods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ATTACK_WORDS = frozenset(
    {"injection", "jailbreak", "malicious", "unsafe", "attack", "adversarial", "harmful"}
)
BENIGN_WORDS = frozenset(
    {"safe", "benign", "legit", "legitimate", "normal", "clean", "harmless", "ok"}
)
NEGATIONS = frozenset({"not", "no", "non"})
_GENERIC = re.compile(r"(?:label_?)?\d+")
_FIX = "name the classes in config.json's id2label, e.g. {0: SAFE, 1: INJECTION}"


@dataclass(frozen=True, slots=True)
class Labels:
    """`attack`: the attack class indices; `head`: how logits become probabilities."""

    names: tuple[str, ...]
    attack: tuple[int, ...]
    head: Literal["softmax", "sigmoid"] = "softmax"
    invert: bool = False
    """A single logit that scores the benign class."""

    def attack_probability(self, logits: Any) -> Any:
        """Per row of a `(rows, classes)` float tensor: the probability of an attack."""
        if self.head == "softmax":
            return logits.softmax(dim=-1)[:, list(self.attack)].sum(dim=-1)
        probability = logits[:, list(self.attack)].sigmoid().amax(dim=-1)
        return 1 - probability if self.invert else probability


def kind_of(name: str) -> Literal["attack", "benign"] | None:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    if words & NEGATIONS or (words & BENIGN_WORDS and not words & ATTACK_WORDS):
        return "benign"
    return "attack" if words & ATTACK_WORDS else None


def read_labels(
    id2label: Mapping[Any, str], problem_type: str | None, where: str | Path = "model"
) -> Labels:
    """The label map of a model (see the module docstring); ValueError when it cannot say
    which class is an attack."""
    names = tuple(str(name) for _, name in sorted((int(k), v) for k, v in id2label.items()))
    if not names:
        raise ValueError(f"{where}: the model has no output classes")
    if problem_type == "regression":
        raise ValueError(f"{where}: a regression head, not a classifier")
    head: Literal["softmax", "sigmoid"] = (
        "sigmoid" if len(names) == 1 or problem_type == "multi_label_classification" else "softmax"
    )
    if all(_GENERIC.fullmatch(name.lower()) for name in names):
        if len(names) > 2:
            raise ValueError(
                f"{where}: {len(names)} unnamed classes {list(names)}: cannot tell which one "
                f"means injection; {_FIX}"
            )
        return Labels(names, (len(names) - 1,), head)
    kinds = [kind_of(name) for name in names]
    unknown = [name for name, kind in zip(names, kinds, strict=True) if kind is None]
    if unknown:
        raise ValueError(
            f"{where}: unknown class labels {unknown} (of {list(names)}): expected attack labels "
            f"such as INJECTION or JAILBREAK and benign ones such as SAFE or BENIGN; {_FIX}"
        )
    attack = tuple(i for i, kind in enumerate(kinds) if kind == "attack")
    if len(names) == 1:
        return Labels(names, (0,), head, invert=not attack)
    if not attack or len(attack) == len(names):
        raise ValueError(
            f"{where}: classes {list(names)} need both an attack class (INJECTION, ...) and a "
            f"benign one (SAFE, ...); {_FIX}"
        )
    return Labels(names, attack, head)
