"""Who a subject access request or an erasure is about: the person behind an address, whether a
member, a desk user, both, or only a suppression and consent lines left from an earlier erasure;
and every row of the database whose text mentions them (docs/data.md, Where it is)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import String, Table, Text, or_, select
from sqlalchemy.orm import Session

from mailer.audience import addresses
from mailer.errors import InvalidInput, UnknownName
from mailer.models import Base, Member, User

# Tables whose rows are the person's own and are read or erased whole, not searched for mentions.
OWN_TABLES = frozenset({"members", "users", "member_fields", "member_interests", "member_choices", "rsvps"})
# Names and postcodes shorter than this are not searched for in other rows' text (too common).
MIN_TERM = 3


@dataclass(frozen=True)
class Person:
    """The person an address names. ``address``: normalised; ``hashes``: every hash their
    suppression and consent lines may be under (the newest key's first)."""

    given: str
    address: str
    hashes: tuple[str, ...]
    member: Member | None
    user: User | None

    @property
    def address_hash(self) -> str:
        return self.hashes[0]

    @property
    def terms(self) -> list[str]:
        """The spellings of the address searched for in text: the normalised one, and its Unicode
        domain where the domain is IDNA."""
        found = [self.address]
        local, _, domain = self.address.rpartition("@")
        try:
            unicode_domain = domain.encode("ascii").decode("idna")
        except UnicodeError:
            unicode_domain = domain
        if unicode_domain != domain:
            found.append(f"{local}@{unicode_domain}")
        return found

    @property
    def personal(self) -> list[str]:
        """What else identifies them in a row that mentions their address: name and postcode."""
        out = []
        for value in (
            self.member.name if self.member else "",
            self.member.postcode if self.member else "",
            self.user.name if self.user else "",
        ):
            if len(value.strip()) >= MIN_TERM and value.strip() not in out:
                out.append(value.strip())
        return out


def normalised(address: str) -> str:
    """``address`` in its canonical form (case, Unicode and white space folded); ``UnknownName``
    when it is not an address at all."""
    try:
        return addresses.normalise(address)
    except InvalidInput as exc:
        raise UnknownName(
            f"{address!r} is not a valid address, so nothing is held about it",
            field="email",
            hint=exc.problems[0].message if exc.problems else None,
        ) from None


def find(session: Session, address: str) -> Person:
    """The person with ``address`` (any spelling that normalises the same)."""
    normal = normalised(address)
    return Person(
        given=address,
        address=normal,
        hashes=tuple(addresses.hash_candidates(session, normal)),
        member=session.scalar(select(Member).where(Member.email == normal)),
        user=session.scalar(select(User).where(User.email == normal)),
    )


@dataclass(frozen=True)
class Mention:
    """A row of ``table`` (by its primary key) whose ``column`` mentions the person's address."""

    table: str
    key: dict[str, object]
    column: str


def text_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, String | Text) and not c.primary_key]


def mentions(session: Session, person: Person) -> Iterator[Mention]:
    """Every row outside the person's own tables whose text mentions their address, in any case.
    A scan of every text column: erasure and subject access are rare, and a mention anywhere (a
    bounce's diagnostic, a delivery's last error, an audit line) must not be missed."""
    for table in Base.metadata.sorted_tables:
        if table.name in OWN_TABLES:
            continue
        columns = text_columns(table)
        if not columns:
            continue
        keys = list(table.primary_key.columns)
        wheres = [table.c[c].icontains(term, autoescape=True) for c in columns for term in person.terms]
        query = select(*keys, *(table.c[c] for c in columns)).where(or_(*wheres))
        for row in session.execute(query):
            key = {k.name: row._mapping[k.name] for k in keys}
            for c in columns:
                value = row._mapping[c]
                if isinstance(value, str) and any(t.lower() in value.lower() for t in person.terms):
                    yield Mention(table.name, key, c)


ERASED = "[erased]"


def scrub_text(text: str, words: list[str]) -> str:
    """``text`` with every occurrence of ``words`` (in any case) replaced by ``[erased]``."""
    for word in sorted(words, key=len, reverse=True):
        text = re.sub(re.escape(word), ERASED, text, flags=re.IGNORECASE)
    return text
