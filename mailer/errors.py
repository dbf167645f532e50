"""One exception hierarchy for everything mailer reports to a person.

Every error carries the data a person needs to fix the problem (the file, line and field, the
recipient, the SMTP code) and says what to do about it. The CLI turns a ``MailerError`` into its
message and ``exit_code``; nothing else is caught there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where it is, what is wrong, and how to fix it."""

    message: str
    path: Path | str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        label = "warning: " if self.severity == "warning" else ""
        return f"{where}{label}{field}{self.message}{hint}"


def toml_error_location(exc: Exception) -> tuple[str, int | None, int | None]:
    """Split tomllib's "Invalid value (at line 3, column 12)" into message, line and column."""
    import re

    text = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if not m:
        return text, None, None
    return text[: m.start()], int(m.group(1)), int(m.group(2))


def suggest(name: str, known: Iterable[str], what: str, *, shown: int = 15) -> str:
    """A hint for an unknown ``name``: the close matches among ``known`` ("did you mean 'kent'?"),
    else the first ``shown`` known names ("known regions: ashford, …"). ``what`` is the plural noun."""
    import difflib

    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    close += [k for k in names if name and name in k and k not in close][: 3 - len(close)]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not names:
        return f"there are no {what} defined"
    return f"known {what}: " + ", ".join(names[:shown]) + (", …" if len(names) > shown else "")


class MailerError(Exception):
    """Base of every error mailer raises on purpose. ``str()`` is the message for a person."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = Problem(message, path=path, line=line, column=column, field=field, hint=hint)
        super().__init__(str(self.problem))

    @property
    def message(self) -> str:
        return self.problem.message

    @property
    def path(self) -> Path | str | None:
        return self.problem.path

    @property
    def line(self) -> int | None:
        return self.problem.line

    @property
    def field(self) -> str | None:
        return self.problem.field


class InvalidInput(MailerError, ValueError):
    """A file or value given to mailer is wrong; ``problems`` lists every problem found at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem], *, summary: str | None = None) -> None:
        self.problems = [p for p in problems if p.severity == "error"]
        self.warnings = [p for p in problems if p.severity == "warning"]
        first = self.problems[0] if self.problems else Problem(summary or "invalid input")
        count = len(self.problems)
        head = summary or (f"{count} problems found" if count > 1 else "1 problem found")
        lines = [head + ":", *(f"  {p}" for p in self.problems)]
        super().__init__(
            "\n".join(lines), path=first.path, line=first.line, column=first.column, field=first.field
        )
        # The message above already holds every problem; keep the args readable.
        self.args = ("\n".join(lines),)

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(MailerError):
    """The workspace or its settings are wrong (mailer.toml, environment, secret file)."""

    exit_code = 2


class NotReady(InvalidInput):
    """The workspace is not ready to mail real people (``mailer doctor``): each problem with its fix."""


class DatabaseError(MailerError):
    """The database cannot be opened, migrated or used."""


class UnknownName(MailerError, LookupError):
    """A region, interest, segment, campaign or member that does not exist was named."""

    exit_code = 2


class SegmentSyntaxError(MailerError, ValueError):
    """A segment expression does not parse; ``column`` says where (1-based)."""

    exit_code = 2


class ContentError(InvalidInput):
    """An issue file (campaigns/<slug>/issue.yaml) is invalid."""


class RenderError(MailerError):
    """A template failed to render (a Jinja2 or MJML error), with the template's name and line."""


class TokenError(MailerError, ValueError):
    """A signed link token is forged, truncated, expired or for another purpose."""

    exit_code = 2


class DeliveryError(MailerError):
    """A send cannot start or go on (nothing to send, campaign paused, no relay)."""


class TransportError(MailerError):
    """A relay refused or failed; ``code`` is the SMTP reply code where there is one."""

    def __init__(
        self, message: str, *, code: int | None = None, temporary: bool = True, **kw: object
    ) -> None:
        self.code = code
        self.temporary = temporary
        super().__init__(message, **kw)  # type: ignore[arg-type]
