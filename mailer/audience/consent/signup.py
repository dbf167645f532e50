"""Sign-up: the form, double opt-in, and the only way a suppression is lifted (a confirmed sign-up)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import ConfigDict, ValidationInfo, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.audience.addresses import address_hash, clean_name, is_mailable, normalise
from mailer.audience.choices import first_word, record_member_choice
from mailer.audience.consent.log import log_line, stamp
from mailer.audience.mailable import SUBSCRIBED
from mailer.audience.networks import consent_text, wording_version
from mailer.errors import InvalidInput, MailerError
from mailer.forms import Form, read
from mailer.models import Interest, Member, NetworkLeave, Region, Suppression, utcnow

if TYPE_CHECKING:
    from mailer.audience.networks import Network
    from mailer.audience.shape import Shape
    from mailer.settings import Settings

# ---------------------------------------------------------------------------------------------
# Sign-up (double opt-in)


@dataclass(frozen=True)
class SignupData:
    """A sign-up waiting for confirmation. ``email`` is normalised; ``issued_at`` is aware UTC."""

    email: str
    name: str
    region: str | None
    postcode: str
    interests: tuple[str, ...]
    wording: str
    issued_at: datetime
    network: str = ""
    """The network the sign-up is to (its region's; "": not told), whose wording was agreed to."""
    form: str = "page"
    """Which form it came from: ``page`` (/subscribe) or ``embed`` (the embeddable snippet), with
    ``:<network>`` for a network's own form (``form_id``)."""

    @property
    def wording_version(self) -> str:
        """The version of the wording agreed to (``networks.wording_version``)."""
        return wording_version(self.wording)


#: The forms a sign-up can come from: the sign-up page, and the snippet other sites embed.
SIGNUP_FORMS: Final = ("page", "embed")


def form_id(form: str, network: Network | None = None) -> str:
    """The form a sign-up came from, as the consent log records it: ``page`` or ``embed``
    (anything else is ``page``), with ``:<network slug>`` for a network's own form."""
    kind = form if form in SIGNUP_FORMS else "page"
    return f"{kind}:{network.slug}" if network is not None and network.regions else kind


def for_network(data: SignupData, network: Network, settings: Settings) -> SignupData:
    """``data`` as a sign-up to ``network`` (its region's): that network's consent wording
    (``networks.consent_text``, naming it and its charity), and its slug."""
    return replace(data, network=network.slug, wording=consent_text(network, settings))


#: The longest name a sign-up may give: it greets the member in every mail.
SIGNUP_NAME_LIMIT: Final = 80

# A web or mail address in a name: a scheme (https://), www., an @, a host followed by a path
# (evil.example/login) or a host ending in a common top-level domain (bit.ly, evil.com).
_ADDRESS_IN_NAME = re.compile(
    r"[a-z][a-z0-9+.-]*:/|\bwww\.|@|[a-z0-9-]\.[a-z]{2,}/"
    r"|\b[a-z0-9-]{2,}\.(?:com|net|org|info|biz|io|co|uk|ly|me|xyz|top|ru|cn|app|dev|link|click|site"
    r"|online|shop|example)\b",
    re.IGNORECASE,
)
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def signup_name_problem(name: str) -> str | None:
    """Why a name given at sign-up is refused, in words for the form, or None if it is fine.

    A name greets the member in every mail the organisation sends, so it may not carry a web or
    mail address (an attacker's "Click https://evil.example/login now") and is at most
    ``SIGNUP_NAME_LIMIT`` characters.
    """
    if len(name) > SIGNUP_NAME_LIMIT:
        return f"Your name can be at most {SIGNUP_NAME_LIMIT} characters long."
    if _ADDRESS_IN_NAME.search(name):
        return "Your name cannot contain a web or email address."
    return None


def mailbox_key(normalised: str) -> str:
    """The mailbox a normalised address delivers to, for counting sign-up mails per mailbox.

    Plus-tags are stripped (``victim+1@example.net`` is ``victim@example.net``), and at gmail.com
    and googlemail.com, which ignore dots and are one service, dots too (``v.i.c.t.i.m@googlemail.com``
    is ``victim@gmail.com``). For counting only: a member keeps the address they gave.
    """
    local, _, domain = normalised.lower().rpartition("@")
    local = local.strip('"').split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


# ---------------------------------------------------------------------------------------------
# The sign-up form


def signup_regions(shape: Shape, network: Network | None) -> list[str] | None:
    """The regions one can sign up in: ``network``'s; with no network given, those of every
    declared network; None (every region) when the workspace declares none."""
    if network is not None and network.regions:
        return [
            slug for slug in shape.regions if any(top in network.regions for top in shape.ancestors(slug))
        ]
    if network is None and shape.networks:
        return [slug for n in shape.networks.values() for slug in signup_regions(shape, n) or []]
    return None


POSTCODE_LIMIT = 16
_POSTCODE = re.compile(r"[A-Z0-9 ]*")


def _postcode(value: str) -> str:
    return " ".join(value.upper().split())[:POSTCODE_LIMIT]


def _context(info: ValidationInfo) -> tuple[Shape, Collection[str] | None, list[str] | None]:
    """The shape, the regions the form offers and those inside a network, from the context."""
    context = info.context or {}
    shape: Shape = context["shape"]
    networked = signup_regions(shape, None)
    offered: Collection[str] | None = context.get("offered")
    return shape, offered if offered is not None else networked, networked


class SignupForm(Form):
    """The sign-up form (``/subscribe`` and the embeddable one), read with the context ``shape``
    (regions, interests, postcode areas) and ``offered`` (the regions the form lists; None: every
    region one can sign up in, ``signup_regions``: with networks declared, those inside a network).

    A region chosen from the list must be one offered; without one, the postcode's region is taken,
    and it must belong to a network (an area no network covers would have nobody to write to it).
    The fields are checked in this order, so that ``region`` sees the postcode as checked."""

    model_config = ConfigDict(validate_default=True)
    messages: ClassVar[dict[str, str]] = {"interests": "Choose interests from the list."}

    email: str = ""
    name: str = ""
    postcode: str = ""
    region: str | None = ""
    """As posted, the region chosen from the list; as checked, the member's region."""
    interests: tuple[str, ...] = ()
    consent: bool = False
    form: str = "page"
    """Which form it was posted from (``SIGNUP_FORMS``); anything else is read as the page."""

    @field_validator("form", mode="before")
    @classmethod
    def _form(cls, value: object) -> str:
        return value if isinstance(value, str) and value in SIGNUP_FORMS else "page"

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        try:
            address = normalise(value)
        except InvalidInput:
            raise ValueError("Enter your email address, like name@example.org.") from None
        if not is_mailable(address):
            raise ValueError(
                "We cannot yet send to an address with accented or non-Latin letters before the @: "
                "please give another address."
            )
        return address

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        cleaned = clean_name(value)
        problem = signup_name_problem(cleaned)
        if problem:
            raise ValueError(problem)
        return cleaned

    @field_validator("postcode")
    @classmethod
    def _tidy_postcode(cls, value: str) -> str:
        code = _postcode(value)
        if not _POSTCODE.fullmatch(code):
            raise ValueError(
                "Enter a postcode like ME14 1HH (letters, digits and a space), or leave it empty."
            )
        return code

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        shape, offered, networked = _context(info)
        if value:
            if value in shape.regions and (offered is None or value in offered):
                return value
            raise ValueError("Choose your region from the list.")
        if "postcode" not in info.data:
            return None  # a postcode that is wrong has its own message
        code = info.data["postcode"]
        if not code:
            raise ValueError("Choose your region, or give your postcode.")
        chosen = shape.region_for_postcode(code)
        if chosen is None or (networked is not None and chosen not in networked):
            raise ValueError(
                "We do not know the area of that postcode yet: choose your region from the list."
            )
        return chosen

    @field_validator("interests")
    @classmethod
    def _interests(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        shape, _offered, _networked = _context(info)
        if any(i not in shape.interests for i in value):
            raise ValueError("Choose interests from the list.")
        return tuple(sorted(set(value)))

    @field_validator("consent", mode="before")
    @classmethod
    def _consent(cls, value: object) -> bool:
        if value is True or value == "yes":
            return True
        raise ValueError("Tick the box to agree to receive our emails.")

    def signup(self, *, wording: str, now: datetime, scope: Network | None = None) -> SignupData:
        """The sign-up to seal into the confirmation link: agreed to ``wording`` at ``now``, from
        this form (of ``scope``'s, a network's own form, if given)."""
        return SignupData(
            email=self.email,
            name=self.name,
            region=self.region,
            postcode=self.postcode,
            interests=self.interests,
            wording=wording,
            issued_at=now,
            form=form_id(self.form, scope),
        )


def check_signup(
    posted: Mapping[str, object],
    shape: Shape,
    *,
    wording: str,
    now: datetime,
    offered: Collection[str] | None = None,
    scope: Network | None = None,
) -> SignupData:
    """The sign-up ``posted`` asks for (``SignupForm``, with ``shape`` and ``offered`` as its
    context), agreed to ``wording`` at ``now`` on a form of ``scope`` (a network's own form) or
    none; ``FormRefused`` with a message by field and the values as posted when any field is
    wrong. ``for_network`` then makes it a sign-up to its region's network, with that wording."""
    context: dict[str, Any] = {"shape": shape, "offered": offered}
    checked = read(SignupForm, posted, context=context).checked()
    return checked.signup(wording=wording, now=now, scope=scope)


def signup_shown(values: Mapping[str, object], shape: Shape) -> dict[str, object]:
    """The sign-up form's fields as it shows them again (refused, or posted without its CSRF
    value): the address and region as typed, the name cleaned, the postcode tidied (empty when it
    is not one), the known interests and whether the box was ticked."""
    code = _postcode(str(values.get("postcode", "")))
    interests = values.get("interests", ())
    return {
        "email": str(values.get("email", "")),
        "name": clean_name(str(values.get("name", ""))),
        "region": str(values.get("region", "")),
        "postcode": code if _POSTCODE.fullmatch(code) else "",
        "interests": [i for i in interests if i in shape.interests] if isinstance(interests, list) else [],
        "consent": values.get("consent") == "yes",
        "form": form_id(str(values.get("form", ""))),
    }


class StaleConfirmation(MailerError):
    """A confirmation link issued before the address was suppressed: it cannot lift the suppression."""


@dataclass(frozen=True)
class Confirmed:
    member_id: int
    created: bool
    resubscribed: bool


def already_subscribed(session: Session, digest: str) -> int | None:
    """The member id when the address hash ``digest`` belongs to a member who may be mailed (a
    sign-up then only reminds them); None for a new, unsubscribed or not-opted-in address, which
    must confirm (a confirmed sign-up is how a member an import marked "not opted in" opts in)."""
    row = session.execute(select(Member.id, Member.status).where(Member.address_hash == digest)).first()
    if row is None or row.status != SUBSCRIBED or suppression.is_hash_suppressed(session, digest):
        return None
    return int(row.id)


def _resubscribe_confirmed(
    session: Session, digest: str, *, member_id: int | None, wording: str, requested_at: datetime
) -> bool:
    """Lift the suppression of ``digest`` because its owner confirmed a new sign-up.

    The only code in mailer that removes a suppression. The caller holds a confirmation that came
    back from the address itself (double opt-in) and was issued after the suppression (see
    ``confirm_signup``). Appends a ``resubscribe`` event to the consent log recording the suppression
    lifted. Returns False when the address was not suppressed.
    """
    held = session.get(Suppression, digest)
    if held is None:
        return False
    was = (
        f"reason {held.reason}, source {held.source}, "
        f"campaign {held.campaign or '-'}, since {stamp(held.created_at)}"
    )
    detail = f"suppression lifted by a confirmed sign-up requested {stamp(requested_at)}; it was: {was}"
    log_line(session, member_id, digest, "resubscribe", "signup", wording=wording, detail=detail)
    session.delete(held)
    session.flush()
    return True


def confirm_signup(
    session: Session, data: SignupData, *, network: str = "", others: Collection[str] = ()
) -> Confirmed:
    """Create or update the member of a confirmed sign-up and log the consent: the ``subscribe``
    line records the wording agreed to and its version, the network, the form and when it was
    asked for.

    ``network``: the network the sign-up was for (its region's, from the signed confirmation link):
    a member who had left that network's mail rejoins it (a ``join-network`` line, source "signup"),
    since they asked for it again and proved the address. Other networks they left stay left.

    ``others``: the workspace's other networks. A sign-up is consent to one network's mail, so a
    member it makes mailable (new, not opted in, or suppressed until now) gets none of theirs: a
    ``network_leaves`` row for each (a ``leave-network`` line, source "signup", "not chosen at
    sign-up"), which their preferences page shows unticked and lets them tick.

    Raises ``StaleConfirmation`` when the address was suppressed after the link was issued (an old
    link must not undo a later unsubscribe). Confirming twice is harmless: the member is updated to
    the same choices and the log gets a second line.
    """
    digest = address_hash(session, data.email)
    held = session.get(Suppression, digest)
    if held is not None and held.created_at.replace(microsecond=0) > data.issued_at:
        raise StaleConfirmation(
            "this confirmation link was issued before the address unsubscribed",
            hint="sign up again to get a new confirmation link",
        )
    region_id = None
    if data.region:
        region_id = session.scalar(select(Region.id).where(Region.slug == data.region))
    member = session.scalar(select(Member).where(Member.address_hash == digest))
    created = member is None
    mailable_before = member is not None and member.status == SUBSCRIBED and held is None
    if member is None:
        member = Member(
            email=data.email,
            address_hash=digest,
            name=data.name,
            first_name=first_word(data.name),
            postcode=data.postcode,
            region_id=region_id,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(member)
        session.flush()
    else:
        if data.name:
            member.name = data.name
            member.first_name = first_word(data.name)
        if data.postcode:
            member.postcode = data.postcode
        if region_id is not None:
            member.region_id = region_id
        member.updated_at = utcnow()
    rows = session.scalars(select(Interest).where(Interest.slug.in_(data.interests))).all()
    member.interests = sorted(rows, key=lambda i: i.slug)
    resubscribed = False
    if held is not None:
        resubscribed = _resubscribe_confirmed(
            session, digest, member_id=member.id, wording=data.wording, requested_at=data.issued_at
        )
    detail = (
        f"double opt-in: requested {stamp(data.issued_at)}, confirmed from the link mailed to the "
        f"address; region {data.region or '-'}; interests {', '.join(data.interests) or '-'}; "
        f"network {data.network or network or '-'}; form {data.form}; wording {data.wording_version}"
    )
    log_line(
        session,
        member.id,
        digest,
        "subscribe",
        "signup",
        wording=data.wording,
        detail=detail,
        network=data.network or network or None,
        form=data.form,
        wording_version=data.wording_version,
    )
    # They chose these themselves: subscribed (whatever an import said), and the rest as given.
    member.status, member.status_source, member.status_at = SUBSCRIBED, "signup", utcnow()
    chosen = ["status", "interests", *(["name"] if data.name else []), *(["region"] if region_id else [])]
    record_member_choice(session, member.id, chosen, source="signup")
    if not mailable_before:
        _not_chosen(session, member.id, digest, [n for n in others if n != network], network)
    if network:
        left = delete(NetworkLeave).where(
            NetworkLeave.member_id == member.id, NetworkLeave.network == network
        )
        if session.execute(left).rowcount:  # type: ignore[attr-defined]
            detail = f"network {network}; rejoined by a confirmed sign-up to it"
            log_line(session, member.id, digest, "join-network", "signup", detail=detail)
    session.flush()
    return Confirmed(member.id, created, resubscribed)


def _not_chosen(session: Session, member_id: int, digest: str, others: list[str], chosen: str) -> None:
    """Mark ``others``, the networks a sign-up to ``chosen`` did not name, as not the member's
    (``network_leaves`` rows, source "signup"), each logged; those already left stay as they are."""
    had = set(session.scalars(select(NetworkLeave.network).where(NetworkLeave.member_id == member_id)))
    for other in others:
        if other in had:
            continue
        session.add(
            NetworkLeave(
                member_id=member_id, network=other, source="signup", campaign=None, created_at=utcnow()
            )
        )
        detail = f"network {other}; not chosen at sign-up (the sign-up was to {chosen or '-'})"
        log_line(session, member_id, digest, "leave-network", "signup", detail=detail)
