"""The prompt registry's errors: each is an `OpsgateError`, so it reaches a client as a clear
OpenAI-shaped 4xx naming what was wrong (the variable, the line and column, the label)."""

from __future__ import annotations

from opsgate.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)


class TemplateSyntaxError(BadRequestError):
    """A template that does not parse; found when a version is pushed, never when serving."""

    default_code = "template_syntax_error"

    def __init__(self, message: str, line: int, column: int, *, where: str | None = None) -> None:
        place = f"{where}: " if where else ""
        super().__init__(f"{place}line {line}, column {column}: {message}", param=where)
        self.line = line
        self.column = column
        self.reason = message

    def at(self, where: str) -> TemplateSyntaxError:
        """The same error, saying which template (`messages[1].content`) it is in."""
        return TemplateSyntaxError(self.reason, self.line, self.column, where=where)


class TemplateRenderError(BadRequestError):
    """Rendering failed on the values given (a missing key, a loop over a non-list)."""

    default_code = "template_render_error"


class TemplateLimitError(BadRequestError):
    """Rendering went past a bound (steps, loop iterations or output size): the template or
    its values are too big, never a hang."""

    default_code = "template_limit_exceeded"


class TemplateTooLargeError(PayloadTooLargeError):
    default_code = "template_too_large"


class VariableError(BadRequestError):
    """A variable missing, unknown, or of the wrong type; `param` names it."""

    default_code = "invalid_variable"


class PromptNotFoundError(NotFoundError):
    """No such prompt, version or label in the caller's team (another team's prompt answers
    the same: it does not exist for this caller)."""

    default_code = "prompt_not_found"


class PromptParamFixedError(BadRequestError):
    """The request sets a parameter the prompt fixes and does not let requests override."""

    default_code = "prompt_param_fixed"


class PromptStoreUnavailableError(ServiceUnavailableError):
    """The registry's database cannot be reached, so a prompt that is not cached cannot be
    resolved (or a change made); nothing was stored or sent upstream."""

    default_code = "prompt_store_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "the prompt registry's database is unavailable; try again",
            headers={"retry-after": "1"},
        )
