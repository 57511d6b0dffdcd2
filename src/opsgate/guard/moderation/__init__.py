"""The `moderation` check: offensive language (a local classifier) and operator deny/allow
rules, as findings the input and output checks act on (flag, block, redact). See
docs/guard.md, "Moderation and input rules"."""

from opsgate.guard.moderation.check import Moderator
from opsgate.guard.moderation.profanity import ProfanityModel, ProfanityModelError
from opsgate.guard.moderation.topics import TopicModelError

__all__ = ["Moderator", "ProfanityModel", "ProfanityModelError", "TopicModelError"]
