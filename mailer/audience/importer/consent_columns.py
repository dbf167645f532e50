"""The columns by which CRM and list-tool exports say whether an address may be mailed, and their values.

This is the one table of them (docs/import.md, "Status columns" lists the same). A header cell is
reduced by ``columns.header_key`` (lower case, letters and digits only) and looked up in
``STATUS_COLUMNS``; each status column has a kind that says how its values read:

``opt-in``
    yes → ``subscribed``; no or an empty cell → ``not-opted-in`` (no evidence of consent is no consent).
``opt-out``
    yes → ``unsubscribed``; no or empty → no objection.
``bounced``
    yes → ``cleaned`` (the address bounces); no or empty → no objection. CiviCRM's ``on_hold`` also
    says ``2`` or ``On Hold Opt Out`` for an opt-out.
``words``
    a status in the tool's own words (Action Network's ``can2_subscription_status``: subscribed,
    unsubscribed, bouncing, spam complaint; Mailchimp's and others' ``Status``-like columns).
``export``
    the column's presence says what the whole file is, whatever its cells: Mailchimp's unsubscribed
    export has ``UNSUB_TIME`` (every row ``unsubscribed``), its cleaned export ``CLEAN_TIME``
    (``cleaned``), and all three of its exports ``MEMBER_RATING`` (``subscribed`` unless one of those
    says otherwise).

A row's status is the most final of its columns' (``mailable.worse``: a "no" outranks a "yes").
A value that is none of the words below is not guessed at: the row is rejected, naming the column.

Flags about the phone, post or SMS (``Do Not Call``, ``Do Not Phone``, ``Do Not Mail``,
``do_not_sms``, …: ``NOT_EMAIL``) say nothing about email: they are kept as member fields and never
read as a status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailer.audience.mailable import CLEANED, NOT_OPTED_IN, SUBSCRIBED, UNSUBSCRIBED

OPT_IN: Final = "opt-in"
OPT_OUT: Final = "opt-out"
BOUNCED: Final = "bounced"
WORDS: Final = "words"
EXPORT: Final = "export"


@dataclass(frozen=True)
class StatusKind:
    """How a status column reads: its kind, and for an ``export`` column the status of every row."""

    kind: str
    status: str | None = None


def _all(kind: StatusKind, *keys: str) -> dict[str, StatusKind]:
    return dict.fromkeys(keys, kind)


STATUS_COLUMNS: Final[dict[str, StatusKind]] = {
    # Opted in: a hand-made sheet's "Opted In", NationBuilder's email_opt_in, "Email Consent", …
    **_all(
        StatusKind(OPT_IN),
        "optedin",
        "optin",
        "emailoptin",
        "emailoptedin",
        "subscribed",
        "emailsubscribed",
        "marketingoptin",
        "emailmarketingoptin",
        "emailconsent",
        "consenttoemail",
        "oktoemail",
        "canemail",
    ),
    # Opted out: CiviCRM's do_not_email, is_opt_out and "No Bulk Emails (User Opt Out)"; Salesforce
    # NPSP's HasOptedOutOfEmail and "Email Opt Out"; NationBuilder's do_not_contact; a sheet's
    # "Do Not Email" and "Unsubscribed".
    **_all(
        StatusKind(OPT_OUT),
        "donotemail",
        "dontemail",
        "noemail",
        "nobulkemail",
        "nobulkemails",
        "nobulkemailsuseroptout",
        "isoptout",
        "optout",
        "optedout",
        "emailoptout",
        "emailoptedout",
        "hasoptedoutofemail",
        "unsubscribed",
        "emailunsubscribed",
        "donotcontact",
    ),
    # Bounced: CiviCRM's on_hold, NationBuilder's email1_is_bad, "Bounced", "Cleaned".
    **_all(
        StatusKind(BOUNCED),
        "onhold",
        "emailonhold",
        "bounced",
        "emailbounced",
        "hardbounce",
        "cleaned",
        "emailisbad",
        "email1isbad",
        "emailinvalid",
    ),
    # In the tool's own words: Action Network's can2_subscription_status and its like.
    **_all(
        StatusKind(WORDS),
        "can2subscriptionstatus",
        "subscriptionstatus",
        "emailsubscriptionstatus",
        "emailstatus",
        "emailmarketingstatus",
        "mailchimpstatus",
    ),
    # Mailchimp's exports, known by their columns.
    "unsubtime": StatusKind(EXPORT, UNSUBSCRIBED),
    "cleantime": StatusKind(EXPORT, CLEANED),
    "memberrating": StatusKind(EXPORT, SUBSCRIBED),
}

NOT_EMAIL: Final = frozenset(
    {
        "donotcall",
        "dontcall",
        "donotphone",
        "dontphone",
        "donotmail",
        "dontmail",
        "donotpost",
        "dontpost",
        "donotsms",
        "donottext",
        "smsoptin",
        "mobileoptin",
        "phoneoptout",
        "can2smsstatus",
    }
)
"""Phone, post and SMS flags: kept as member fields, never read as an email status."""

YES: Final = frozenset({"yes", "y", "true", "t", "1", "x", "on", "checked", "ticked"})
NO: Final = frozenset({"no", "n", "false", "f", "0", "off", "unchecked"})

STATUS_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("subscribed", "opted in", "opt in", "opted-in"), SUBSCRIBED),
    **dict.fromkeys(
        (
            "pending",
            "not subscribed",
            "non-subscribed",
            "nonsubscribed",
            "never subscribed",
            "not opted in",
            "transactional",
            "archived",
        ),
        NOT_OPTED_IN,
    ),
    **dict.fromkeys(
        (
            "unsubscribed",
            "opted out",
            "opt out",
            "opted-out",
            "spam complaint",
            "complained",
            "complaint",
            "on hold opt out",
        ),
        UNSUBSCRIBED,
    ),
    **dict.fromkeys(("cleaned", "bouncing", "bounced", "hard bounce", "on hold bounce", "on hold"), CLEANED),
}
"""The tools' own words for a status, in any column of a status kind."""

_ON_YES: Final = {OPT_IN: SUBSCRIBED, OPT_OUT: UNSUBSCRIBED, BOUNCED: CLEANED, WORDS: SUBSCRIBED}
_ON_NO: Final[dict[str, str | None]] = {
    OPT_IN: NOT_OPTED_IN,
    OPT_OUT: None,
    BOUNCED: None,
    WORDS: NOT_OPTED_IN,
}
_ON_EMPTY: Final[dict[str, str | None]] = {
    OPT_IN: NOT_OPTED_IN,
    OPT_OUT: None,
    BOUNCED: None,
    WORDS: NOT_OPTED_IN,
}

WORDS_HINT: Final = "yes/no, true/false, 1/0, Y/N, or subscribed/unsubscribed/cleaned"


def status_kind(key: str) -> StatusKind | None:
    """The status kind of a header cell reduced by ``header_key``; None for any other column."""
    return STATUS_COLUMNS.get(key)


def read_status(kind: StatusKind, cell: str) -> str | None:
    """The status ``cell`` says in a column of ``kind``: a status, or None for "no objection".

    Raises ``ValueError`` for a value that is none of the known words (the caller rejects the row).
    """
    if kind.kind == EXPORT:
        return kind.status
    value = " ".join(cell.replace("_", " ").casefold().split())
    if not value:
        return _ON_EMPTY[kind.kind]
    if value in YES:
        return _ON_YES[kind.kind]
    if value in NO:
        return _ON_NO[kind.kind]
    if kind.kind == BOUNCED and value == "2":  # CiviCRM's on_hold: 1 a bounce, 2 an opt-out
        return UNSUBSCRIBED
    found = STATUS_WORDS.get(value)
    if found is None:
        raise ValueError(value)
    return found
