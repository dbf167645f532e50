"""The desk's people and what each may do: persons, their roles, and ``can``.

A person (``users``) signs in by a one-time link mailed to their address. What they may do comes
from their roles (``user_roles``), each scoped to a network (and, for a contributor, a region):

- **admin**: everything. Of one network (``network = "kent"``), or of every network (``""``).
- **editor** of a network: read its inbox of contributions, compose, test-send, schedule, and send
  once the issue is approved (``may_send``).
- **approver** of a network: approve its issues, but never one they last edited (``may_approve``;
  the same rule holds for editors and admins who also approve).
- **contributor** of a region (a local group): submit items and events to that region's network
  only, for that region or the regions below it.

A workspace without ``lists/networks.toml`` has one network; its roles are stored with network
``""`` (and an admin of "every network" is then simply its admin). Everything here is a library call
on a SQLAlchemy session: the CLI (``mailer users``) and the desk's pages share it; each change is
written to the audit log (``mailer.desk.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.audience.addresses import clean_name, is_mailable, normalise
from mailer.audience.networks import default_network, of_region
from mailer.audience.shape import Shape
from mailer.desk import audit, sessions
from mailer.errors import InvalidInput, Problem, UnknownName, suggest
from mailer.models import User, UserRole
from mailer.settings import Settings

ROLES = ("admin", "editor", "approver", "contributor")

ACTIONS = (
    "view",  # open the network's pages on the desk
    "review",  # read the network's inbox of contributions; accept, edit or decline them
    "compose",  # write and edit the network's issues
    "test-send",  # send a test of an issue to oneself
    "schedule",  # schedule an approved issue
    "send",  # send an approved issue now
    "approve",  # approve an issue (never one you last edited)
    "submit",  # send an item or event to the network's inbox
    "manage-people",  # add and remove people and roles, sign people out
)

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "editor": frozenset({"view", "review", "compose", "test-send", "schedule", "send"}),
    "approver": frozenset({"view", "approve"}),
    "contributor": frozenset({"view", "submit"}),
}

ROLE_NAMES = {
    "admin": "Admin",
    "editor": "Editor",
    "approver": "Approver",
    "contributor": "Contributor",
}

NAME_LIMIT = 200


@dataclass(frozen=True)
class Role:
    """One role: ``network`` "" is every network for an admin (or the workspace's only network);
    ``region`` is a contributor's region, else ""."""

    role: str
    network: str = ""
    region: str = ""
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "network": self.network, "region": self.region}


@dataclass(frozen=True)
class Person:
    """A person of the desk with their roles."""

    id: int
    email: str
    name: str
    roles: tuple[Role, ...]
    created_at: datetime
    disabled_at: datetime | None = None
    has_password: bool = False

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def admin_of_all(self) -> bool:
        return self.active and any(r.role == "admin" and r.network == "" for r in self.roles)

    @property
    def is_admin(self) -> bool:
        """An admin of every network or of one."""
        return self.active and any(r.role == "admin" for r in self.roles)

    def admin_networks(self) -> list[str]:
        return sorted({r.network for r in self.roles if r.role == "admin"})

    def networks(self) -> list[str]:
        """The networks any of the roles is in ("" for every network, or the only one)."""
        return sorted({r.network for r in self.roles})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": [r.as_dict() for r in self.roles],
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "password": self.has_password,
        }


# ---------------------------------------------------------------------------------------------
# The rules


def _within(region: str, scope: str, shape: Shape | None) -> bool:
    """Whether ``region`` is ``scope`` or below it (without the shape: the same region only)."""
    if not scope or region == scope:
        return True
    if shape is None or region not in shape.regions:
        return False
    return scope in shape.ancestors(region)


def can(person: Person, action: str, network: str, region: str = "", *, shape: Shape | None = None) -> bool:
    """Whether ``person`` may do ``action`` in ``network`` (a slug, "" for the workspace's only
    network), for ``region`` where it matters (a contributor's submission). A disabled person may
    do nothing. ``action`` is one of ``ACTIONS``."""
    if action not in ROLE_ACTIONS["admin"]:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if not person.active:
        return False
    for role in person.roles:
        if role.role == "admin" and role.network in ("", network):
            return True
        if role.network != network or action not in ROLE_ACTIONS.get(role.role, frozenset()):
            continue
        if role.role == "contributor" and region and not _within(region, role.region, shape):
            continue
        return True
    return False


def may_approve(person: Person, network: str, last_editor_id: int | None) -> bool:
    """Whether ``person`` may approve an issue of ``network`` that ``last_editor_id`` (a user id;
    None when nobody has edited it on the desk) edited last: an approver (or admin) who is not that
    last editor. Nobody approves their own edit, an admin included."""
    return can(person, "approve", network) and person.id != last_editor_id


def may_send(person: Person, network: str, *, approved: bool) -> bool:
    """Whether ``person`` may send or schedule an issue of ``network``: an editor (or admin), and
    only once it is approved."""
    return approved and can(person, "send", network)


def actions_of(person: Person, network: str) -> list[str]:
    """What ``person`` may do in ``network``, in the order of ``ACTIONS``."""
    return [a for a in ACTIONS if can(person, a, network)]


# ---------------------------------------------------------------------------------------------
# Checking a role against the workspace's networks and regions


def network_label(shape: Shape, settings: Settings, network: str) -> str:
    """A network's name for people: "every network" for an admin's "" when there are several."""
    if network in shape.networks:
        return shape.networks[network].name
    if not shape.networks:
        return default_network(settings).name
    return "every network" if network == "" else network


def check_role(shape: Shape, settings: Settings, role: str, network: str = "", region: str = "") -> Role:
    """The role as it will be stored, or an error naming the field and the fix: a known role; an
    editor or approver needs a network; a contributor needs a region and belongs to that region's
    network; with no networks declared, the network is the workspace's own (stored as "")."""
    role, network, region = role.strip().lower(), network.strip(), region.strip()
    if role not in ROLES:
        raise UnknownName(f"unknown role {role!r}", field="role", hint=suggest(role, ROLES, "roles"))
    if region and region not in shape.regions:
        raise UnknownName(
            f"unknown region {region!r}", field="region", hint=suggest(region, shape.regions, "regions")
        )
    if region and role != "contributor":
        raise InvalidInput(
            [Problem("only a contributor has a region", field="region", hint="leave out --region")]
        )
    if not shape.networks:
        own = default_network(settings).slug
        if network not in ("", own):
            raise UnknownName(
                f"unknown network {network!r}",
                field="network",
                hint=f"this workspace has one network, {own!r}; declare more in lists/networks.toml",
            )
        network = ""
    elif network and network not in shape.networks:
        raise UnknownName(
            f"unknown network {network!r}",
            field="network",
            hint=suggest(network, shape.networks, "networks"),
        )
    if role == "contributor":
        if not region:
            raise InvalidInput(
                [
                    Problem(
                        "a contributor needs a region (their local group)",
                        field="region",
                        hint="give --region, e.g. --region birmingham",
                    )
                ]
            )
        if shape.networks:
            # The network owning the region (``of_region``), not a member's (``member_network``,
            # the organisation's for a region of no network): such a region has no contributors.
            owner = of_region(shape, settings, region)
            if owner is None:
                raise InvalidInput([Problem(f"region {region!r} belongs to no network", field="region")])
            if network and network != owner.slug:
                raise InvalidInput(
                    [
                        Problem(
                            f"region {region!r} belongs to network {owner.slug!r}, not {network!r}",
                            field="network",
                            hint=f"use --network {owner.slug} or leave --network out",
                        )
                    ]
                )
            network = owner.slug
    elif role in ("editor", "approver") and shape.networks and not network:
        raise InvalidInput(
            [
                Problem(
                    f"an {role} works for one network",
                    field="network",
                    hint="give --network: " + ", ".join(shape.networks),
                )
            ]
        )
    return Role(role, network, region)


# ---------------------------------------------------------------------------------------------
# Reading and changing people


def _person(session: Session, user: User) -> Person:
    roles = session.scalars(
        select(UserRole)
        .where(UserRole.user_id == user.id)
        .order_by(UserRole.network, UserRole.role, UserRole.region, UserRole.id)
    )
    return Person(
        id=user.id,
        email=user.email,
        name=user.name,
        roles=tuple(Role(r.role, r.network, r.region, r.id) for r in roles),
        created_at=user.created_at,
        disabled_at=user.disabled_at,
        has_password=bool(user.password_hash),
    )


def person(session: Session, user_id: int) -> Person | None:
    user = session.get(User, user_id)
    return None if user is None else _person(session, user)


def _address(email: str) -> str:
    address = normalise(email)
    if not is_mailable(address):
        raise InvalidInput(
            [Problem(f"cannot mail {address!r}: the part before the @ must be ASCII", field="email")]
        )
    return address


def by_email(session: Session, email: str) -> Person | None:
    """The person with address ``email`` (normalised), or None (also for an address that is not one)."""
    try:
        address = normalise(email)
    except InvalidInput:
        return None
    user = session.scalar(select(User).where(User.email == address))
    return None if user is None else _person(session, user)


def find(session: Session, email: str) -> Person:
    """The person with address ``email``; UnknownName if there is none."""
    found = by_email(session, email)
    if found is None:
        raise UnknownName(
            f"nobody with the address {email!r} is on the desk", field="email", hint="mailer users list"
        )
    return found


def everyone(session: Session) -> list[Person]:
    """Every person, active first, by address."""
    users = session.scalars(select(User).order_by(User.disabled_at.is_not(None), User.email))
    return [_person(session, u) for u in users]


@dataclass(frozen=True)
class Added:
    person: Person
    new_person: bool
    new_role: bool


def add(
    session: Session,
    email: str,
    role: Role | None,
    *,
    name: str = "",
    by: int | None,
    now: datetime,
    via: str = "desk",
) -> Added:
    """Give the person at ``email`` the (checked, see ``check_role``) ``role``, adding the person
    first if they are new (and enabling them again if they were removed). ``by`` is the user id
    of who did it (None: the command line). Idempotent: a role they have already is left as is.
    With ``role`` None the person is added with no role (they may sign in and see nothing until
    an admin gives them one): nobody gets a role they were not given on purpose."""
    address = _address(email)
    name = clean_name(name)[:NAME_LIMIT]
    user = session.scalar(select(User).where(User.email == address).with_for_update())
    new_person = user is None
    if user is None:
        user = User(email=address, name=name, created_at=now)
        session.add(user)
        session.flush()
        audit.record(session, "person.add", by=by, object=address, detail=f"via {via}", now=now)
    else:
        if name and name != user.name:
            user.name = name
        if user.disabled_at is not None:
            user.disabled_at = None
            audit.record(session, "person.enable", by=by, object=address, detail=f"via {via}", now=now)
    if role is None:
        return Added(_person(session, user), new_person, False)
    existing = session.scalar(
        select(UserRole).where(
            UserRole.user_id == user.id,
            UserRole.role == role.role,
            UserRole.network == role.network,
            UserRole.region == role.region,
        )
    )
    if existing is None:
        session.add(
            UserRole(
                user_id=user.id, role=role.role, network=role.network, region=role.region, created_at=now
            )
        )
        session.flush()
        audit.record(
            session, "role.add", by=by, object=address, detail=f"{describe(role)} via {via}", now=now
        )
    return Added(_person(session, user), new_person, existing is None)


def describe(role: Role) -> str:
    """``editor of central-england``, ``contributor of kent/canterbury``, ``admin of every network``."""
    where = role.network or ("every network" if role.role == "admin" else "the network")
    if role.region:
        where = f"{role.network}/{role.region}" if role.network else role.region
    return f"{role.role} of {where}"


def remove(
    session: Session,
    email: str,
    *,
    role: str | None = None,
    network: str | None = None,
    region: str | None = None,
    by: int | None,
    now: datetime,
    via: str = "desk",
) -> list[Role]:
    """Take roles from the person at ``email``: those matching ``role``, ``network`` and ``region``
    (each None: any). With no filter at all, every role goes, the person is disabled and signed
    out everywhere. Returns the roles removed; UnknownName if none matched."""
    found = find(session, email)
    matching = [
        r
        for r in found.roles
        if (role is None or r.role == role)
        and (network is None or r.network == network)
        and (region is None or r.region == region)
    ]
    if not matching and (role, network, region) != (None, None, None):
        held = ", ".join(describe(r) for r in found.roles) or "none"
        raise UnknownName(f"{found.email} has no such role", field="role", hint=f"their roles: {held}")
    for r in matching:
        session.execute(delete(UserRole).where(UserRole.id == r.id))
        audit.record(
            session, "role.remove", by=by, object=found.email, detail=f"{describe(r)} via {via}", now=now
        )
    if (role, network, region) == (None, None, None):
        user = session.get(User, found.id)
        assert user is not None
        if user.disabled_at is None:
            user.disabled_at = now
            audit.record(session, "person.disable", by=by, object=found.email, detail=f"via {via}", now=now)
        sessions.revoke_all(session, found.id, now=now, by=by, via=via)
    session.flush()
    return matching


def remove_role(
    session: Session, role_id: int, *, by: int | None, now: datetime
) -> tuple[Person, Role] | None:
    """Take the role with id ``role_id`` from its person; None if there is no such role."""
    row = session.get(UserRole, role_id)
    if row is None:
        return None
    user = session.get(User, row.user_id)
    assert user is not None
    taken = Role(row.role, row.network, row.region, row.id)
    session.delete(row)
    session.flush()
    audit.record(
        session, "role.remove", by=by, object=user.email, detail=f"{describe(taken)} via desk", now=now
    )
    return _person(session, user), taken


# ---------------------------------------------------------------------------------------------
# What an admin does at the desk, each one transaction


def manages(admin: Person, target: Person) -> bool:
    """Whether ``admin`` may sign ``target`` out: an admin of every network; or an admin of each
    network ``target`` has a role in (never of an admin of every network)."""
    if admin.admin_of_all:
        return True
    if target.admin_of_all or not target.roles:
        return False
    return all(can(admin, "manage-people", r.network) for r in target.roles)


@dataclass(frozen=True)
class Overview:
    """The people ``admin`` sees, the audit lines that are theirs and live sessions by person."""

    people: list[Person]
    lines: list[audit.AuditLine]
    live: dict[int, int]


def overview(session: Session, admin: Person, *, now: datetime, lines: int = 30) -> Overview:
    shown = everyone(session)
    if not admin.admin_of_all:
        shown = [p for p in shown if any(can(admin, "manage-people", r.network) for r in p.roles)]
    recent = audit.recent(session, limit=lines, by=None if admin.admin_of_all else admin.id)
    live = {p.id: sessions.live_count(session, p.id, now=now) for p in shown}
    return Overview(shown, recent, live)


def take_role(session: Session, role_id: int, *, by: Person, now: datetime) -> str:
    """Take a role as ``by``: "done", or why not: "missing", "forbidden" (not their network) or
    "last" (the last admin of every network)."""
    row = session.get(UserRole, role_id)
    if row is None:
        return "missing"
    if not can(by, "manage-people", row.network):
        return "forbidden"
    if row.role == "admin" and row.network == "" and _last_admin(session, row.id):
        return "last"
    remove_role(session, role_id, by=by.id, now=now)
    return "done"


def _last_admin(session: Session, role_id: int) -> bool:
    """Whether the admin-of-every-network role ``role_id`` is the only one of an enabled person."""
    others = session.scalars(
        select(UserRole.id)
        .join(User, User.id == UserRole.user_id)
        .where(
            UserRole.role == "admin",
            UserRole.network == "",
            UserRole.id != role_id,
            User.disabled_at.is_(None),
        )
    )
    return next(iter(others), None) is None


def sign_out_everywhere(session: Session, user_id: int, *, by: Person, now: datetime) -> str:
    """End every session of ``user_id`` as ``by``: "done", "missing" or "forbidden"."""
    target = person(session, user_id)
    if target is None:
        return "missing"
    if not manages(by, target):
        return "forbidden"
    sessions.revoke_all(session, target.id, now=now, by=by.id)
    return "done"
