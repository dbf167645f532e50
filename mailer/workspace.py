"""Making workspaces: ``mailer init DIR`` and the demo network's files shipped with the package."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailer.errors import ConfigError
from mailer.settings import SETTINGS_FILE, default_toml

SHAPE_FILES = ("regions.toml", "interests.toml", "segments.toml", "postcode_areas.csv")

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


def init_workspace(target: Path, *, organisation: str | None = None, demo: bool = False) -> list[Path]:
    """Make a workspace in ``target``: mailer.toml, templates/, lists/ (the demo shape) and campaigns/.

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

    write(target / SETTINGS_FILE, default_toml(organisation))
    write(target / "templates" / "README.md", TEMPLATES_README)
    write(target / ".gitignore", "mailer.db*\noutbox/\n.mailer-secret\n*.rejected.csv\npreview/\n")
    source = demo_source()
    for name in SHAPE_FILES:
        src = source / "lists" / name
        if src.exists():
            write(target / "lists" / name, src.read_text(encoding="utf-8"))
    (target / "campaigns").mkdir(exist_ok=True)
    if demo:
        write(
            target / "lists" / "members.csv", (source / "lists" / "members.csv").read_text(encoding="utf-8")
        )
        for campaign in sorted((source / "campaigns").iterdir()):
            dest = target / "campaigns" / campaign.name
            if campaign.is_dir() and not dest.exists():
                shutil.copytree(campaign, dest)
                written.append(dest)
    return written
