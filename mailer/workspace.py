"""Making workspaces: ``mailer init DIR`` and the demo network's files shipped with the package."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer.errors import ConfigError, InvalidInput, Problem
from mailer.secret_key import new_secret, read_secret_file, secret_weakness, write_secret_file
from mailer.settings import (
    ADDRESS_KEY_FILE,
    ADDRESS_KEY_WHAT,
    SECRET_FILE,
    SETTINGS_FILE,
    Settings,
    default_toml,
)

SHAPE_FILES = ("regions.toml", "interests.toml", "segments.toml", "postcode_areas.csv")
# The demo's members and its two networks (Kent, Central England). A workspace made for a network
# of its own (``NewNetwork``) gets lists/networks.toml with that one network instead.
DEMO_FILES = ("members.csv", "networks.toml")
DEMO_ORGANISATION = "Example Human Rights UK"

# What `mailer init` writes for a value it was not given (without a terminal, or on purpose):
# `mailer doctor` names each as a problem until it is set.
PLACEHOLDER_NAME = "Our Network"
PLACEHOLDER_FROM = "newsletter@example.org"
PLACEHOLDER_BASE_URL = "http://127.0.0.1:8000"

_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_LONGEST = 500

EMPTY_REGIONS = """\
# Your network's region tree: where members live, and what issues and sign-ups target.
# Each [[region]] has a slug (lower-case letters, digits and hyphens; used in segments, issue files
# and CSV imports), a name (shown to members) and, below the top level, a parent. Targeting a region
# reaches everyone below it. A local group's region may add `contact` (named in the welcome mail),
# `from_name` and `reply_to` (the sender of a mailing to that group alone).
# To rename a region's slug later, keep the old one as `renamed_from = "old-slug"` for one sync.
# Run `mailer lists sync` after every edit; running it twice changes nothing.
#
# [[region]]
# slug = "west-midlands"
# name = "West Midlands"
#
# [[region]]
# slug = "birmingham"
# name = "Birmingham"
# parent = "west-midlands"
# contact = "Birmingham group: birmingham@your-domain.org"
"""

EMPTY_INTERESTS = """\
# What members can choose to hear about: each [[interest]] has a slug, a name and a description.
#
# [[interest]]
# slug = "refugees"
# name = "Refugee rights"
# description = "Campaigns and events for refugees and people seeking asylum."
"""

EMPTY_SEGMENTS = """\
# Saved audiences, by name: each [[segment]] has a name and a segment expression
# (region:SLUG, interest:SLUG, joined:>2025-01-01, combined with and, or, not and brackets).
#
# [[segment]]
# name = "birmingham-refugees"
# expression = "region:birmingham and interest:refugees"
"""

EMPTY_POSTCODE_AREAS = "area,region\n"


@dataclass(frozen=True)
class NewNetwork:
    """The network a new workspace is for: what `mailer init` asks or takes as flags."""

    name: str = PLACEHOLDER_NAME
    from_address: str = PLACEHOLDER_FROM
    base_url: str = PLACEHOLDER_BASE_URL
    list_domain: str = ""  # empty: lists.<From's domain>
    postal_address: str = ""
    privacy_url: str = ""  # empty: `mailer doctor` asks for it

    @property
    def domain(self) -> str:
        return self.list_domain.strip().lower() or default_list_domain(self.from_address)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "network"

    def problems(self) -> list[Problem]:
        """Every value that cannot be used, each naming its flag and the fix."""
        out: list[Problem] = []
        for flag, value, multiline in (
            ("--name", self.name, False),
            ("--postal-address", self.postal_address, True),
        ):
            allowed = "\n" if multiline else ""
            if (
                any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value)
                or len(value) > _LONGEST
            ):
                out.append(
                    Problem(
                        f"{value[:60]!r} holds control characters or is over {_LONGEST} characters",
                        field=flag,
                        hint="plain text only: it goes into mail headers and footers",
                    )
                )
        if not self.name.strip():
            out.append(Problem("the network needs a name", field="--name", hint='e.g. --name "Kent Network"'))
        if not _ADDRESS.match(self.from_address):
            out.append(
                Problem(
                    f"{self.from_address!r} is not an email address with a domain",
                    field="--from",
                    hint="e.g. --from news@your-network.org",
                )
            )
        parts = urlsplit(self.base_url.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c.isspace() for c in self.base_url)
        ):
            out.append(
                Problem(
                    f"{self.base_url!r} is not an http(s) URL",
                    field="--base-url",
                    hint="the address members open the web app at, e.g. https://news.your-network.org",
                )
            )
        if self.privacy_url and not _privacy_url_ok(self.privacy_url):
            out.append(
                Problem(
                    f"{self.privacy_url[:80]!r} is not an https:// address or a path on the web app",
                    field="--privacy-url",
                    hint="the address of your privacy notice, e.g. https://your-network.org/privacy",
                )
            )
        if self.domain and not _DOMAIN.match(self.domain):
            out.append(
                Problem(
                    f"{self.domain!r} is not a domain name",
                    field="--list-domain",
                    hint="e.g. lists.your-network.org",
                )
            )
        return out

    def networks_toml(self) -> str:
        """lists/networks.toml with this one network, owning every region."""
        import tomli_w

        entry: dict[str, Any] = {
            "slug": self.slug,
            "name": self.name,
            "from_address": self.from_address,
            "list_id": self.slug,
            "postal_address": self.postal_address,
        }
        if self.privacy_url:
            entry["privacy_url"] = self.privacy_url.strip()
        return (
            "# Who your mail speaks as. `postal_address` is the footer's postal address, which UK marketing\n"
            "# mail must carry (PECR); `privacy_url` the privacy notice every mail and page links to (an\n"
            "# https:// address, or a path on the web app); `charity` a registration line, `consent_text`\n"
            "# what a sign-up agrees to (default: wording naming the network and its charity line),\n"
            "# `reply_to`, `sign_off`, `welcome`,\n"
            "# `heading` and `colour` are optional. A network without `regions` owns every region; with\n"
            '# several networks, give each its top regions (regions = ["west-midlands"]).\n\n'
            + tomli_w.dumps({"network": [entry]}, multiline_strings=True)
        )


def _privacy_url_ok(url: str) -> bool:
    """An https:// address with a host, or a path on the web app, with nothing a link cannot carry
    (the full check is ``mailer.audience.networks.privacy_url_problem``, when networks.toml is read)."""
    url = url.strip()
    if not url or any(c.isspace() or c in "\"'<>" for c in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    parts = urlsplit(url)
    return parts.scheme.lower() == "https" and bool(parts.hostname)


def default_list_domain(from_address: str) -> str:
    """The list domain made from a From address: ``lists.`` and the address's domain."""
    domain = from_address.rpartition("@")[2].strip().lower()
    return f"lists.{domain}" if domain else ""


TEMPLATES_README = """\
# Templates

A template here overrides the packaged default of the same name (see `mailer/templates/` in the
mailer package for the defaults and their names). Copy one here and edit it to change how this
network's mail and pages look; delete it to go back to the default.
"""


def demo_source() -> Path:
    """The folder holding the demo network's ``lists/`` and ``campaigns/``.

    In a source checkout that is the repository root; in an installed wheel, ``mailer/_demo``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_demo", here.parent):
        if (candidate / "lists" / "regions.toml").exists():
            return candidate
    raise ConfigError("the demo network's files are missing from this installation", path=here)


def write_keys(target: Path) -> list[Path]:
    """Create the workspace's private keys that are missing, each readable by its owner only
    (mode 600), and return the paths written: the key for signed links (``.mailer-secret``).
    Other keys a workspace needs (DKIM's) are made here too."""
    written: list[Path] = []
    secret = target / SECRET_FILE
    if not secret.exists():
        write_secret_file(secret, [new_secret()])
        written.append(secret)
    address_key = target / ADDRESS_KEY_FILE  # the suppression hash's (docs/data.md)
    if not address_key.exists():
        write_secret_file(address_key, [new_secret()], what=ADDRESS_KEY_WHAT)
        written.append(address_key)
    # DKIM keys: write_dkim_keys, called by `mailer init`, `mailer demo` and `mailer dkim keys`.
    return written


@dataclass(frozen=True)
class SecretRotation:
    """What ``rotate_secret`` did to the secret file."""

    path: Path
    keys: int  # keys in the file now, the new one first
    kept: int  # earlier keys kept so that links already sent still work
    dropped_weak: int  # earlier keys dropped because they are too weak to trust
    dropped_old: int  # earlier keys dropped on request (``drop_old``)
    environment_overrides: bool  # MAILER_SECRET is set, so the file is not used until it is unset

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "keys": self.keys,
            "kept": self.kept,
            "dropped_weak": self.dropped_weak,
            "dropped_old": self.dropped_old,
            "environment_overrides": self.environment_overrides,
        }


def rotate_secret(
    workspace: Path, *, drop_old: bool = False, env: Mapping[str, str] | None = None
) -> SecretRotation:
    """Put a new key first in the workspace's ``.mailer-secret`` (mode 600), creating it if needed.

    Earlier keys stay after it, so that links already mailed keep working, unless ``drop_old``
    (when those links no longer matter); an earlier key too weak to trust is always dropped. The
    keys themselves are never returned.
    """
    return _rotate(
        workspace / SECRET_FILE, drop_old=drop_old, overridden=(env or {}).get("MAILER_SECRET", "")
    )


def rotate_address_key(workspace: Path, *, env: Mapping[str, str] | None = None) -> SecretRotation:
    """Put a new key first in the workspace's ``.mailer-address-key`` (mode 600), the suppression
    hash's, creating it if needed. The earlier keys always stay: members' hashes are made again
    under the new key the next time the database is used (``mailer.audience.addresses``), but the
    suppressions of people erased under an old key can only be matched with that key
    (docs/data.md, The suppression hash)."""
    return _rotate(
        workspace / ADDRESS_KEY_FILE,
        drop_old=False,
        overridden=(env or {}).get("MAILER_ADDRESS_KEY", ""),
        what=ADDRESS_KEY_WHAT,
    )


def _rotate(path: Path, *, drop_old: bool, overridden: str, what: str | None = None) -> SecretRotation:
    old = read_secret_file(path)
    strong = [k for k in old if secret_weakness(k) is None]
    kept = [] if drop_old else strong
    if what is None:
        write_secret_file(path, [new_secret(), *kept])
    else:
        write_secret_file(path, [new_secret(), *kept], what=what)
    return SecretRotation(
        path=path,
        keys=1 + len(kept),
        kept=len(kept),
        dropped_weak=len(old) - len(strong),
        dropped_old=len(strong) - len(kept),
        environment_overrides=bool(overridden.strip()),
    )


def write_dkim_keys(target: Path, settings: Settings | None = None) -> list[Path]:
    """Create the DKIM private keys that are missing: RSA-2048 (``dkim_key_file``) and Ed25519
    (``dkim_ed25519_key_file``), PEM, mode 600; return the paths written. With the default
    ``dkim_algorithms = "auto"`` every message is then signed with both; ``mailer dkim dns`` prints
    the DNS records that publish their public halves."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    settings = settings or Settings(workspace=target)
    written: list[Path] = []
    for name, make in (
        (settings.dkim_key_file, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        (settings.dkim_ed25519_key_file, ed25519.Ed25519PrivateKey.generate),
    ):
        path = target / name
        if path.exists():
            continue
        pem = make().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        written.append(path)
    return written


def init_workspace(
    target: Path,
    *,
    organisation: str | None = None,
    from_address: str | None = None,
    demo: bool = False,
    network: NewNetwork | None = None,
    example: bool = False,
) -> list[Path]:
    """Make a workspace in ``target``: mailer.toml, templates/, lists/, campaigns/ and its private
    keys (``write_keys``: .mailer-secret, mode 600); return the paths written.

    For a ``network`` of its own (what ``mailer init`` makes): its settings in mailer.toml, its
    identity in lists/networks.toml, and an empty region tree, interests and segments to fill in
    (the demo network's with ``example``). Without one, the example network's lists, in a
    workspace marked ``demo = true`` (tests and benchmarks make these); with ``demo`` the demo
    members and campaigns come too. Existing files are never overwritten.
    """
    if network is not None:
        problems = network.problems()
        if problems:
            raise InvalidInput(problems, summary="the network's details cannot be used")
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, text: str) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)

    if demo and organisation is None:
        organisation = DEMO_ORGANISATION  # the movement; its networks speak for themselves
    values: dict[str, Any] = {"demo": network is None}
    if network is not None:
        organisation, from_address = network.name, network.from_address
        values.update(base_url=network.base_url.strip().rstrip("/"), list_domain=network.domain)
    write(target / SETTINGS_FILE, default_toml(organisation, from_address, **values))
    write(target / "templates" / "README.md", TEMPLATES_README)
    ignored = (
        "mailer.db*",
        "outbox/",
        ".mailer-secret",
        ".mailer-address-key",
        ".mailer-dkim*.pem",
        "*.rejected.csv",
        "preview/",
        "inbound/",  # the Maildir `mailer inbound deliver` keeps members' mail in
    )
    write(target / ".gitignore", "".join(line + "\n" for line in ignored))
    written.extend(write_keys(target))
    source = demo_source()
    for name, text in _lists(source, network, example).items():
        write(target / "lists" / name, text)
    (target / "campaigns").mkdir(exist_ok=True)
    if demo:
        for name in DEMO_FILES:
            write(target / "lists" / name, (source / "lists" / name).read_text(encoding="utf-8"))
        for campaign in sorted((source / "campaigns").iterdir()):
            dest = target / "campaigns" / campaign.name
            if campaign.is_dir() and not dest.exists():
                shutil.copytree(campaign, dest)
                written.append(dest)
    return written


def _lists(source: Path, network: NewNetwork | None, example: bool) -> dict[str, str]:
    """The lists/ files of a new workspace, by name: the example network's shape (without a
    network of its own, or with ``example``) or empty ones to fill in; and the network's identity."""
    files: dict[str, str] = {}
    if network is None or example:
        for name in SHAPE_FILES:
            src = source / "lists" / name
            if src.exists():
                files[name] = src.read_text(encoding="utf-8")
    else:
        empty = (EMPTY_REGIONS, EMPTY_INTERESTS, EMPTY_SEGMENTS, EMPTY_POSTCODE_AREAS)
        files.update(zip(SHAPE_FILES, empty, strict=True))
    if network is not None:
        files["networks.toml"] = network.networks_toml()
    return files
