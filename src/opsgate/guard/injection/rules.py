"""Heuristic rule families over folded text (see `opsgate.guard.normalize`).

A family is a few probes. A probe is a list of gate strings and a regex that must match right
where a gate occurs (`pattern.match(text, at)`). Finding gates is the cost that matters (a regex
or even one `str.find` per gate over a 1k-token prompt adds up to milliseconds), so each gate
has keys, ASCII words one of which it contains: the text's set of ASCII words is built once (a
byte translate and a split), and a gate whose keys are absent costs one set lookup. Only then
does `str.find` look for it, and the regex run where it occurs.

A family is `high` confidence when it fired on no benign row of the training data: it marks a
text as an attack on its own. The others are features of the classifier, which learned how much
each one counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD_BYTES = bytes(
    c if chr(c).isascii() and chr(c).isalnum() else ord(" ") for c in range(256)
).lower()
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset[bytes]:
    """The text's ASCII words (letters and digits; anything else separates)."""
    return frozenset(text.encode("ascii", "replace").translate(_WORD_BYTES).split())


def _gap(n: int) -> str:
    """Up to `n` filler words."""
    return rf"(?:[\w'\u2019-]+ ){{0,{n}}}"


@dataclass(frozen=True, slots=True)
class Probe:
    gates: tuple[tuple[str, frozenset[bytes]], ...]
    """Each gate with its keys: ASCII words one of which every occurrence of the gate
    contains (empty: the gate has no ASCII word, look whenever the text is not ASCII)."""
    pattern: re.Pattern[str]

    def fires(self, text: str, present: frozenset[bytes]) -> bool:
        ascii_only = text.isascii()
        return any(
            self.fires_at(text, gate)
            for gate, keys in self.gates
            if not keys.isdisjoint(present) or not (keys or ascii_only)
        )

    def fires_at(self, text: str, gate: str) -> bool:
        """Whether the pattern matches where `gate` occurs."""
        at = text.find(gate)
        while at >= 0:
            if self.pattern.match(text, at):
                return True
            at = text.find(gate, at + 1)
        return False


def probe(
    gates: str | tuple[str, ...],
    rest: str = "",
    *,
    before: str = "",
    word: bool = True,
    keys: str = "",
) -> Probe:
    """Gates `a|b|c` (literal), then `rest`; `before` is a look-behind on what precedes the
    gate; `word` requires the gate to start a word (off for scripts written without spaces).
    `keys` (for every gate) default to each gate's longest ASCII word."""
    names = tuple(gates.split("|")) if isinstance(gates, str) else gates
    head = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    start = r"(?<![\w'])" if word else ""
    pattern = re.compile(f"{before}{start}(?:{head})(?:{rest})")
    if keys:
        shared = frozenset(k.encode() for k in keys.split("|"))
        return Probe(tuple((name, shared) for name in names), pattern)
    return Probe(tuple((name, _longest_word(name)) for name in names), pattern)


def _longest_word(gate: str) -> frozenset[bytes]:
    found = _ASCII_WORD.findall(gate)
    return frozenset({max(found, key=len).encode()}) if found else frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    high: bool
    probes: tuple[Probe, ...]


_INSTRUCTIONS = (
    r"(?:instructions?|directives?|rules|guidelines|prompts?|commands?|orders|programming|"
    r"constraints|restrictions|guidance|context|policies|safeguards|filters|training)"
)
_IGNORE = (
    "ignore|ignoring|disregard|disregarding|forget|forgetting|skip|override|bypass|neglect|"
    "overlook|discard|abandon|dismiss|erase|delete|nullify|set aside|throw out|do not follow|"
    "don't follow|stop following"
)

_IGNORE_PREVIOUS = Rule(
    "ignore_previous",
    high=True,
    probes=(
        probe(
            _IGNORE,
            rf" {_gap(2)}(?:all |any |every |each |of )?(?:the |your |my |these |those |its )?"
            r"(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|old|"
            r"existing|system|developer|default|given|current|safety|ethical|openai|"
            rf"pre-?programmed)[\w ,-]{{0,30}}?\b{_INSTRUCTIONS}"
            r"| (?:all|everything|anything) (?:above|before|prior|previously|that came before|"
            r"you(?:'ve| have)? (?:been told|learned|were told))"
            r"| (?:all )?(?:of )?(?:the |everything )?(?:above|previous|prior|preceding)"
            r"(?: text| message| content| prompt)?(?: and\b|[,.;:!]|$)",
        ),
        probe(
            "ignora|olvida|olvide|ignore|ignorez|oublie|oubliez|ignoriere|ignorieren sie|vergiss|"
            "vergessen sie|dimentica|esqueça|esqueca",
            r" (?:\w+ ){0,3}(?:instrucciones|indicaciones|instructions|consignes|anweisungen|"
            r"instruktionen|istruzioni|instruções)",
        ),
        probe("αγνοήστε|αγνόησε|αγνοήσατε", r" (?:\w+ ){0,3}οδηγίες"),
        probe("忽略|无视|忘记|忘掉|無視", r"[^。]{0,12}(?:指令|指示|说明|规则)", word=False),
        probe("以前|前|上記|これまで", r"の(?:指示|命令|指令)を(?:すべて)?無視", word=False),
        probe("이전|앞의|위의", r" (?:모든 )?(?:지시|지침|명령)\w* 무시"),
    ),
)

_DAN_JAILBREAK = Rule(
    "dan_jailbreak",
    high=False,
    probes=(
        probe("do anything now|jailbreak|jailbroken|jailbreaking"),
        probe("dan", r"\b"),
        probe(
            "developer|dev|god|debug|admin|sudo|unrestricted|unfiltered|uncensored|evil|chaos|"
            "dude|anarchy|jailbreak|dan|opposite|villain",
            r"[ _\\-]{1,2}mode\b",
        ),
        probe(
            "stay in character|stays in character|staying in character|stay in role|"
            "break character|breaking character"
        ),
        probe(
            "amoral|unethical|immoral|unfiltered|uncensored|unrestricted",
            r" (?:ai|assistant|chatbot|bot|model|character|version|persona)\b",
        ),
        probe(
            "never refuse|never refuses|never decline|never declines|never say no|"
            "never says no|will not refuse|must not refuse|should not refuse|won't refuse"
        ),
        probe("openai", r"(?:'s|s)? (?:content |usage )?polic(?:y|ies)\b", keys="openai|openais"),
        probe("content policy|content policies"),
        probe(
            "without |no |free from |free of |not bound by ",
            r"(?:any )?(?:\w+ ){0,2}(?:restrictions|limitations|limits|censorship|filters|"
            r"ethical guidelines|moral guidelines|boundaries)\b",
        ),
    ),
)

_SYSTEM_PROMPT_LEAK = Rule(
    "system_prompt_leak",
    high=True,
    probes=(
        probe(
            "reveal|show|print|repeat|output|display|tell|give|share|leak|dump|disclose|"
            "spell out|recite|write out|list|what is|what are|what was|what were|what's",
            rf" {_gap(4)}(?:your|the|its) {_gap(2)}(?:system|initial|hidden|secret|original|"
            r"internal|developer|confidential|pre-?)[ -]?(?:prompt|instructions|message|rules|"
            r"guidelines|configuration)\b",
        ),
        probe(
            "repeat",
            r" (?:\w+ ){0,3}(?:words|text|everything|instructions|lines) (?:above|before)\b",
        ),
        probe("text above|everything above|words above", r",? (?:starting|beginning) with\b"),
        probe("instructions verbatim|prompt verbatim"),
    ),
)

_EXFILTRATION = Rule(
    "exfiltration",
    high=False,
    probes=(
        probe(
            "what's|what is|what was|tell me|reveal|give me|confirm|share|disclose|print|show|"
            "provide|repeat|spell|hint",
            r" (?:\w+ ){0,4}(?:secret|password|passcode|api key|access code|credentials?)\b",
        ),
        probe("passwort|mot de passe|contraseña|κωδικό|κωδικός"),
        probe(
            "'s |\u2019s |s' ",
            r"(?:e-?mail(?: address)?|home address|phone(?: number)?|birth ?date|"
            r"date of birth|social security|ssn|credit card|bank account|salary|medical|"
            r"location|where\w*)\b",
            word=False,
            keys="email|mail|address|phone|birth|birthdate|social|ssn|credit|bank|salary|"
            "medical|location|where|whereabouts",
        ),
    ),
)

_ROLE_OVERRIDE = Rule(
    "role_override",
    high=False,
    probes=(
        probe("you are now|you are no longer|you're now|you're no longer"),
        probe("from now on", r",? (?:you|your|u|act|respond|answer|always|only)\b"),
        probe(
            "act as|behave as|respond as|answer as",
            r" (?:if you (?:were|are) )?(?:an? )?(?:\w+ )?(?:unrestricted|unfiltered|"
            r"uncensored|evil|jailbroken|rogue|amoral|unethical)\b",
        ),
        probe(
            "pretend",
            r" (?:to be|you are|you're|that you are) (?:\w+ ){0,6}(?:without|no|free|"
            r"unrestricted|unfiltered|uncensored|amoral)\b",
        ),
        probe("switch|switched|enter|entering|activate|enable|enabled", r" (?:\w+ )?mode\b"),
        probe("new role|new persona|new personality|new identity|new instruction", r"\b"),
        probe(
            "i am your|i'm your|i am the|i'm the|as your",
            r" (?:developer|creator|admin|administrator|owner|programmer|master)\b",
        ),
    ),
)

_FAKE_DELIMITER = Rule(
    "fake_delimiter",
    high=False,
    probes=(
        probe(
            ("<|",),
            r"(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>",
            word=False,
            keys="im|system|user|assistant|endoftext|eot|header",
        ),
        probe(
            "[inst]|[/inst]|<<sys>>|<</sys>>|<system>|</system>|<instructions>|</instructions>|"
            "<admin>|[system]|[admin]|system:|assistant:|system :",
            word=False,
        ),
        probe(
            "##",
            r"#* ?(?:system|instructions?|new instructions?|admin)\b",
            word=False,
            keys="system|instruction|instructions|new|admin",
        ),
        probe(
            "end of|beginning of|start of|end|begin",
            r" (?:the )?(?:system|user|previous) (?:prompt|input|message|instructions)\b",
        ),
        probe(
            "system|admin|administrator|developer|security",
            r" (?:override|update|notice|alert|message|access|command)s?\b",
        ),
    ),
)

_ADDRESSED_TO_AI = Rule(
    "addressed_to_ai",
    high=False,
    probes=(
        probe(
            "your reply|your replies|your response|your responses|your answer|your answers|"
            "your output|your summary",
            r"\b",
            before=r"(?:(?<=in )|(?<=to )|(?<=into )|(?<=within )|(?<=throughout )|(?<=of )|"
            r"(?<=render )|(?<=write )|(?<=provide )|(?<=give )|(?<=format )|(?<=deliver )|"
            r"(?<=translate )|(?<=phrase )|(?<=present )|(?<=end )|(?<=begin )|(?<=start ))",
        ),
        probe(
            "when",
            r" (?:you )?(?:reply|replying|respond|responding|answer|answering|summariz)",
        ),
        probe("if you are an|if you are a", r" (?:ai|language model|llm|assistant|chatbot)\b"),
        probe(
            "do not|don't|never",
            r" (?:tell|inform|mention|reveal|show|let) (?:\w+ )?the user\b",
        ),
        probe(
            "instead", r",? (?:you (?:should|must) )?(?:say|respond|reply|answer|output|write)\b"
        ),
        probe("note to", r" (?:the )?(?:ai|assistant|model|llm)\b"),
        probe(
            "assistant,|assistant |language model,|language model |llm,|llm |chatbot,|chatbot |"
            "ai,|ai ",
            r" ?(?:please|you must|you should|reading this)\b",
        ),
    ),
)

_FEW_SHOT_DIALOGUE = Rule(
    "few_shot_dialogue",
    high=False,
    probes=(
        # "Q: ... A: ... Q: ...": made-up turns that prime the model's next answer. `[^:]`
        # stops at the next colon, so no text is scanned by more than one attempt.
        probe("q:", r" [^:]{1,300}\ba: [^:]{1,400}\bq: "),
    ),
)

_SECRET_MENTION = Rule(
    "secret_mention",
    high=False,
    probes=(
        # "the password", "your secret key": the secret a system prompt guards, named as
        # something the model holds (not "a password", "my password").
        probe(
            "password|passphrase|secret key|secret",
            r"\b",
            before=r"(?:(?<=the )|(?<=your ))",
        ),
    ),
)

RULES: tuple[Rule, ...] = (
    _IGNORE_PREVIOUS,
    _DAN_JAILBREAK,
    _SYSTEM_PROMPT_LEAK,
    _EXFILTRATION,
    _ROLE_OVERRIDE,
    _FAKE_DELIMITER,
    _ADDRESSED_TO_AI,
    _FEW_SHOT_DIALOGUE,
    _SECRET_MENTION,
)
RULE_NAMES = tuple(rule.name for rule in RULES)

_Entry = tuple[str, Probe, str]
_BY_KEY: dict[bytes, list[_Entry]] = {}
_NOT_ASCII: list[_Entry] = []
for _rule in RULES:
    for _probe in _rule.probes:
        for _gate, _keys in _probe.gates:
            for _key in _keys:
                _BY_KEY.setdefault(_key, []).append((_rule.name, _probe, _gate))
            if not _keys:
                _NOT_ASCII.append((_rule.name, _probe, _gate))
_KEYS = frozenset(_BY_KEY)


def fired(text: str, present: frozenset[bytes] | None = None) -> frozenset[str]:
    """Names of the rule families that match the folded `text`: only gates whose key words
    occur in the text are looked for (one set intersection picks them). `present` is
    `words(text)` when the caller has it already."""
    present = words(text) if present is None else present
    entries = [e for key in sorted(_KEYS & present) for e in _BY_KEY[key]]
    if not text.isascii():
        entries += _NOT_ASCII
    found: set[str] = set()
    tried: set[tuple[int, str]] = set()
    for name, found_probe, gate in entries:
        if name in found or (id(found_probe), gate) in tried:
            continue
        tried.add((id(found_probe), gate))
        if found_probe.fires_at(text, gate):
            found.add(name)
    return frozenset(found)
