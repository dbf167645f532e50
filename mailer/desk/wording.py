"""The library's errors in the desk's words: no command-line options, no file lines, no hashes.

The library's errors are written for whoever runs the command line ("leave out --at", "add
--allow-changed", "`mailer campaigns retry …`"); the desk shows the same errors to volunteers in a
browser, who have no command line. ``words`` turns an error into a sentence for a page: the
message, and its hint only when the hint speaks of what a page offers (a known command-line hint is
replaced by the desk's, any other is left out). ``field`` names the form field an error is about
("--at" is the send form's time, ``at``). The command line keeps its own wording.
"""

from __future__ import annotations

import re

from mailer.errors import InvalidInput, MailerError, Problem

# Words of the command line that have no place on a page: an option, or a command in backticks.
COMMAND_LINE = re.compile(r"(?<![\w-])--[a-z]|`mailer\b|\bmailer [a-z]+ [a-z-]+")
# Where a file's line is named (" [line 20]", " (line 20)", "issue.yaml:20:").
LINES = re.compile(r"\s*[\[(]line \d+(?:, column \d+)?[\])]|\b[\w./-]+\.ya?ml:\d+(?::\d+)?:?\s*")

# The command line's options and the desk's form fields they stand for.
FIELDS = {"--at": "at", "--region": "region", "--network": "network", "--segment": "segment"}
# The desk's own hint where the command line's names an option: the first whose words it holds.
HINTS = (
    ("leave out --at", "choose a time to come, or send it now"),
    ("leave out --region", "leave the region empty: only a contributor has one"),
    ("give --region", "choose their local group's region"),
    ("leave --network out", "choose the network the region belongs to, or none"),
    ("give --network", "choose the network they work for"),
    ("--allow-changed", "put the issue back as it was when it was first sent"),
)


def field(exc: MailerError) -> str:
    """The form field ``exc`` is about, in the desk's names ("" when none)."""
    name = exc.field or ""
    return FIELDS.get(name, name)


def hint(problem: Problem) -> str:
    """``problem``'s hint for a page: the desk's own for a command-line one, else as written
    when it names no option or command ("" when there is none to give)."""
    given = problem.hint or ""
    if not given:
        return ""
    if not COMMAND_LINE.search(given):
        return LINES.sub("", given)
    return next((words for needle, words in HINTS if needle in given), "")


def sentence(problem: Problem) -> str:
    """One problem as words for a page: its message (no file lines), and its hint if any."""
    text = LINES.sub("", problem.message).strip()
    if COMMAND_LINE.search(text):
        text = COMMAND_LINE.split(text, maxsplit=1)[0].rstrip(" ,:;(")
    told = hint(problem)
    return text + (f": {told}" if told else "")


def words(exc: MailerError) -> str:
    """An error's message and hint (an invalid issue's first problems) for a person on a page."""
    if isinstance(exc, InvalidInput):
        return "; ".join(sentence(p) for p in exc.problems[:5])
    return sentence(exc.problem)


def has_command_line(text: str) -> bool:
    """Whether ``text`` speaks of the command line (an option or a command)."""
    return bool(COMMAND_LINE.search(text))
