"""Making workspaces: ``mailer init DIR`` and the demo network's files shipped with the package."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailer.errors import ConfigError
from mailer.settings import (
    SECRET_FILE,
    SETTINGS_FILE,
    Settings,
    default_toml,
    new_secret,
    read_secret_file,
    secret_weakness,
    write_secret_file,
)

SHAPE_FILES = ("regions.toml", "interests.toml", "segments.toml", "postcode_areas.csv")
# The demo's members and its two networks (Kent, Central England). A new workspace has one network,
# made from mailer.toml's organisation and from_address, until it writes lists/networks.toml.
DEMO_FILES = ("members.csv", "networks.toml")
DEMO_ORGANISATION = "Example Human Rights UK"

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
    path = workspace / SECRET_FILE
    old = read_secret_file(path)
    strong = [k for k in old if secret_weakness(k) is None]
    kept = [] if drop_old else strong
    write_secret_file(path, [new_secret(), *kept])
    return SecretRotation(
        path=path,
        keys=1 + len(kept),
        kept=len(kept),
        dropped_weak=len(old) - len(strong),
        dropped_old=len(strong) - len(kept),
        environment_overrides=bool((env or {}).get("MAILER_SECRET", "").strip()),
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
    target: Path, *, organisation: str | None = None, from_address: str | None = None, demo: bool = False
) -> list[Path]:
    """Make a workspace in ``target``: mailer.toml, templates/, lists/ (the demo shape), campaigns/
    and its private keys (``write_keys``: .mailer-secret, mode 600).

    With ``demo`` the demo members and campaigns come too. Existing files are never overwritten;
    the paths written are returned.
    """
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, text: str) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)

    if demo and organisation is None:
        organisation = DEMO_ORGANISATION  # the movement; its networks speak for themselves
    write(target / SETTINGS_FILE, default_toml(organisation, from_address))
    write(target / "templates" / "README.md", TEMPLATES_README)
    ignored = ("mailer.db*", "outbox/", ".mailer-secret", ".mailer-dkim*.pem", "*.rejected.csv", "preview/")
    write(target / ".gitignore", "".join(line + "\n" for line in ignored))
    written.extend(write_keys(target))
    source = demo_source()
    for name in SHAPE_FILES:
        src = source / "lists" / name
        if src.exists():
            write(target / "lists" / name, src.read_text(encoding="utf-8"))
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
