"""The per-recipient slot markers: written once into a rendered variant, filled in per recipient.

The renderer writes ``[[mailer:NAME]]`` where a recipient's own value goes (their name, their
unsubscribe and preferences links); the message builder turns each marker into a slot of the wire
bytes, and previews and public copies replace them with sample or neutral values. This module is
the one definition of the markers, shared by all of them.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Mapping

SLOT_NAMES = ("greeting", "name", "email", "unsubscribe_url", "preferences_url", "rsvp_token")
"""Every slot a rendered variant may hold. ``rsvp_token`` is the member's signed token for answering
the events of the campaign, repeated in each event's RSVP link (``/rsvp/{event uid}/TOKEN``: the
event is static in the variant; docs/events.md, Tokens). ``greeting`` is the whole first line ("Dear
Jo," or, for a member without a first name, "Hello,"), so that no member is greeted "Dear friend" or
"Dear Smith"."""

GREETING = "Dear {name},"
GREETING_WITHOUT_NAME = "Hello,"
"""The default greetings (settings ``greeting`` and ``greeting_without_name``)."""


def greeting(name: str, named: str = GREETING, nameless: str = GREETING_WITHOUT_NAME) -> str:
    """The greeting of a member whose first name is ``name`` (already cleaned); ``{name}`` in
    ``named`` is the name. Members are greeted by their first name only, never by a surname or a
    whole name ("Dear Smith,"): without a first name they get ``nameless`` ("Hello,")."""
    return named.replace("{name}", name) if name else nameless


FIRST_NAME = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*\.?")
"""What a greeting takes as a first name: one word of letters, with inner hyphens, apostrophes or
dots (Anne-Marie, O'Neill, J.); anything else (digits, links, symbols) greets "Hello,"."""
FIRST_NAME_LIMIT = 40


def greeting_for(first_name: str, named: str = GREETING, nameless: str = GREETING_WITHOUT_NAME) -> str:
    """``greeting`` of a first name as stored or typed (the first word of it), or ``nameless`` when
    that is not plainly a name: system mails go to whoever an address belongs to, so a word a
    stranger typed is put in only when it cannot carry a link or a message."""
    words = first_name.split()
    word = words[0] if words else ""
    if len(word) > FIRST_NAME_LIMIT or not FIRST_NAME.fullmatch(word):
        word = ""
    return greeting(word, named, nameless)


MARKER_PATTERN = re.compile(r"\[\[mailer:([^\]\s]*)\]\]")
"""A slot marker; group 1 is the slot's name (which may be one we do not know)."""


def marker(name: str) -> str:
    """The marker written for slot ``name``: ``[[mailer:name]]``."""
    return f"[[mailer:{name}]]"


SLOTS = {name: marker(name) for name in SLOT_NAMES}
"""The markers by slot name, as the templates write them (``{{ slots.unsubscribe_url }}``)."""


def unknown_markers(text: str) -> list[str]:
    """The names of markers in ``text`` that are not slots, sorted."""
    return sorted({m for m in MARKER_PATTERN.findall(text) if m not in SLOT_NAMES})


def fill_slots(text: str, values: Mapping[str, str], *, html: bool, missing: str | None = None) -> str:
    """Replace each marker with its value in ``values`` (HTML-escaped when ``html``).

    A marker with no value is left as it is, or replaced by ``missing`` when that is given; without
    a ``greeting`` value the greeting is made from ``name`` when that is given. For previews, public
    copies and tests; the send path fills slots in the wire bytes instead.
    """
    if "greeting" not in values and "name" in values:
        values = {**values, "greeting": greeting(values["name"])}

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        if value is None:
            return m.group(0) if missing is None else missing
        return html_module.escape(value) if html else value

    return MARKER_PATTERN.sub(sub, text)
