"""Who the desk tells what, by mail.

Each mail is a ``Notice``: the mail template (``templates/web/mail/<template>``), the address, the
network it speaks as, and the words and links it carries. The library decides who gets which
notice; the surface renders and sends them (the web app through its system mail, after the page
has gone, so how long it takes tells nobody anything).

What a person is told (``KINDS``), each kind one they can turn off on their desk home:

- **contribution-received**: a local group's contribution arrived in the inbox (to whoever may
  review it, not to its sender);
- **contribution-decided**: your contribution was accepted into an issue, or declined with a note;
- **approval-wanted**: an editor asked for an issue to be approved (to the approvers who may approve
  it: never its last editor);
- **approved**: an issue you may send was approved;
- **scheduled** and **sent**: an issue of your network was scheduled, or went out (with its report).

Two mails are not a choice: the sign-in link someone asked for, and the invitation that tells a
person they were given a role (with a link to sign in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.audience.networks import Network
from mailer.desk import audit, people, sessions
from mailer.desk.inbox import Entry
from mailer.desk.people import Person
from mailer.errors import UnknownName, suggest
from mailer.models import User
from mailer.settings import Settings

LINK_MINUTES = int(sessions.LINK_LIFETIME.total_seconds() // 60)

KINDS: dict[str, str] = {
    "contribution-received": "a contribution arrives in an inbox I review",
    "contribution-decided": "my contribution is accepted or declined",
    "approval-wanted": "an issue waits for my approval",
    "approved": "an issue I may send is approved",
    "scheduled": "an issue of my network is scheduled",
    "sent": "an issue of my network has gone out, with its report",
}


@dataclass(frozen=True)
class Notice:
    """One mail to send: ``template`` (``web/mail/<template>``) for ``to``, from ``network`` (the
    workspace's default when None), with ``context`` for the template."""

    template: str
    to: str
    network: Network | None = None
    context: dict[str, Any] = field(default_factory=dict)


def _desk(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + "/desk"


def _with_settings_link(settings: Settings, context: dict[str, Any]) -> dict[str, Any]:
    return context | {"settings_url": _desk(settings) + "/#notifications"}


# ---------------------------------------------------------------------------------------------
# Each person's choice


def turned_off(session: Session, user_id: int) -> set[str]:
    """The kinds ``user_id`` turned off."""
    user = session.get(User, user_id)
    return set() if user is None else {k for k in (user.notify_off or "").split() if k in KINDS}


def choose(session: Session, user_id: int, off: Iterable[str], *, now: datetime) -> set[str]:
    """Turn off exactly the kinds ``off`` for ``user_id`` (the others on); what is off now. An
    unknown kind is refused, naming the ones there are."""
    kinds = set(off)
    for kind in kinds:
        if kind not in KINDS:
            raise UnknownName(
                f"unknown kind of notification {kind!r}", field="off", hint=suggest(kind, KINDS, "kinds")
            )
    user = session.get(User, user_id)
    if user is None:
        raise UnknownName("nobody with that id is on the desk", field="user")
    before = turned_off(session, user_id)
    user.notify_off = " ".join(sorted(kinds))
    if kinds != before:
        detail = "off: " + (", ".join(sorted(kinds)) or "none")
        audit.record(session, "notifications.choose", by=user_id, object=user.email, detail=detail, now=now)
    return kinds


def _who(session: Session, kind: str, wanted: Iterable[Person], *, not_: Iterable[int] = ()) -> list[Person]:
    """Of ``wanted``, the active people who did not turn ``kind`` off, leaving out the ids ``not_``."""
    skip = set(not_)
    out: list[Person] = []
    for person in wanted:
        if person.active and person.id not in skip and kind not in turned_off(session, person.id):
            out.append(person)
    return out


def able(session: Session, action: str, network: str) -> list[Person]:
    """Everyone who may do ``action`` in ``network`` (``people.can``)."""
    return [p for p in people.everyone(session) if people.can(p, action, network)]


# ---------------------------------------------------------------------------------------------
# The mails that are not a choice


def sign_in_link(settings: Settings, address: str, token: str) -> Notice:
    """The link that signs ``address`` in (``sessions.mail_link`` made ``token``)."""
    url = f"{_desk(settings)}/sign-in/{token}"
    return Notice("desk_sign_in.txt", address, context={"sign_in_url": url, "minutes": LINK_MINUTES})


def invitation(
    session: Session,
    settings: Settings,
    network: Network | None,
    invited: Person,
    role_words: str,
    *,
    by: Person,
    now: datetime,
) -> Notice:
    """Tell ``invited`` that ``by`` gave them ``role_words`` (e.g. "Editor of Kent Network"), with
    a sign-in link of their own (valid ``LINK_MINUTES``) and the page to ask for another."""
    token = sessions.issue_link(session, invited.id, now=now)
    audit.record(session, "sign-in.link", by=by.id, object=invited.email, detail="invitation", now=now)
    return Notice(
        "desk_invited.txt",
        invited.email,
        network,
        {
            "role": role_words,
            "by": by.name or by.email,
            "sign_in_url": f"{_desk(settings)}/sign-in/{token}",
            "ask_url": f"{_desk(settings)}/sign-in",
            "minutes": LINK_MINUTES,
        },
    )


# ---------------------------------------------------------------------------------------------
# Contributions


def _kind_words(entry: Entry) -> str:
    return "event" if entry.kind == "event" else "news item"


def contribution_received(
    session: Session, settings: Settings, network: Network, key: str, entry: Entry
) -> list[Notice]:
    """A new contribution, for whoever may review the inbox of ``network`` (``key``), but its sender."""
    inbox = f"{_desk(settings)}/networks/{network.slug}/inbox/{entry.id}"
    sender = people.by_email(session, entry.submitter) if entry.submitter else None
    reviewers = _who(
        session, "contribution-received", able(session, "review", key), not_=[sender.id] if sender else []
    )
    context = {"kind": _kind_words(entry), "title": entry.title, "inbox_url": inbox}
    return [
        Notice("contribution_received.txt", p.email, network, _with_settings_link(settings, context))
        for p in reviewers
    ]


def _to_contributor(session: Session, entry: Entry) -> Person | None:
    if not entry.submitter:
        return None
    sender = people.by_email(session, entry.submitter)
    if sender is None or not _who(session, "contribution-decided", [sender]):
        return None
    return sender


def contribution_accepted(
    session: Session, settings: Settings, network: Network, entry: Entry, issue_title: str
) -> Notice | None:
    """Its contributor told that ``entry`` went into ``issue_title`` (None: nobody to tell)."""
    sender = _to_contributor(session, entry)
    if sender is None:
        return None
    context = {"kind": _kind_words(entry), "title": entry.title, "issue": issue_title}
    return Notice("contribution_accepted.txt", sender.email, network, _with_settings_link(settings, context))


def contribution_declined(
    session: Session, settings: Settings, network: Network, entry: Entry, note: str
) -> Notice | None:
    """The editor's ``note`` on a declined contribution, for its contributor (None when the
    contributor is no longer known, or turned these mails off)."""
    sender = _to_contributor(session, entry)
    if sender is None:
        return None
    context = {
        "kind": _kind_words(entry),
        "title": entry.title,
        "note": note,
        "contribute_url": f"{_desk(settings)}/networks/{network.slug}/contribute",
    }
    return Notice("contribution_declined.txt", sender.email, network, _with_settings_link(settings, context))


# ---------------------------------------------------------------------------------------------
# Issues


@dataclass(frozen=True)
class IssueRef:
    """An issue as a notice names it: its folder, its title and its network (``key`` "" for the
    workspace's only network)."""

    slug: str
    title: str
    network: Network
    key: str


def _issue_context(settings: Settings, issue: IssueRef, **more: Any) -> dict[str, Any]:
    base = {"title": issue.title, "issue_url": f"{_desk(settings)}/issues/{issue.slug}"}
    return _with_settings_link(settings, base | more)


def approval_wanted(
    session: Session, settings: Settings, issue: IssueRef, *, by: Person, last_editor: int | None
) -> list[Notice]:
    """``by`` asked for ``issue`` to be approved: the approvers who may approve it (not its last
    editor, not the asker)."""
    wanted = [p for p in able(session, "approve", issue.key) if people.may_approve(p, issue.key, last_editor)]
    context = _issue_context(
        settings, issue, by=by.name or by.email, approve_url=f"{_desk(settings)}/issues/{issue.slug}/approve"
    )
    return [
        Notice("approval_wanted.txt", p.email, issue.network, context)
        for p in _who(session, "approval-wanted", wanted, not_=[by.id])
    ]


def approved(session: Session, settings: Settings, issue: IssueRef, *, by: Person) -> list[Notice]:
    """``by`` approved ``issue``: whoever may send it, but the approver."""
    context = _issue_context(
        settings, issue, by=by.name or by.email, send_url=f"{_desk(settings)}/issues/{issue.slug}/send"
    )
    return [
        Notice("issue_approved.txt", p.email, issue.network, context)
        for p in _who(session, "approved", able(session, "send", issue.key), not_=[by.id])
    ]


def scheduled(
    session: Session, settings: Settings, issue: IssueRef, when: str, *, by: Person
) -> list[Notice]:
    """``by`` scheduled ``issue`` for ``when`` (already in words): its network's senders and approvers."""
    wanted = {p.id: p for a in ("send", "approve") for p in able(session, a, issue.key)}
    context = _issue_context(settings, issue, by=by.name or by.email, when=when)
    return [
        Notice("issue_scheduled.txt", p.email, issue.network, context)
        for p in _who(session, "scheduled", wanted.values(), not_=[by.id])
    ]


def sent(session: Session, settings: Settings, issue: IssueRef, report: dict[str, int]) -> list[Notice]:
    """``issue`` went out: its network's senders and approvers, with the report's figures."""
    wanted = {p.id: p for a in ("send", "approve") for p in able(session, a, issue.key)}
    context = _issue_context(
        settings, issue, report=report, report_url=f"{_desk(settings)}/issues/{issue.slug}/report"
    )
    return [
        Notice("issue_sent.txt", p.email, issue.network, context)
        for p in _who(session, "sent", wanted.values())
    ]
