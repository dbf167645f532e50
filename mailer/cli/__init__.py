"""The ``mailer`` command: a thin click layer over the library.

It parses options, calls the library, prints the result (or JSON with ``--json``), and turns a
``MailerError`` into its message and exit code. Each command group lives in its own module, which
imports the library's stages inside its commands: ``mailer --help`` loads click and these modules
only (``bench/cli_help.py`` times it).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailer import __version__
from mailer.errors import MailerError

if TYPE_CHECKING:
    from mailer.audience.shape import Shape
    from mailer.db import Database
    from mailer.settings import Settings


class App:
    """What every command needs, opened lazily: settings, the shape of the lists, the database."""

    def __init__(self, workspace: Path | None) -> None:
        self.workspace_arg = workspace

    @cached_property
    def settings(self) -> Settings:
        from mailer.settings import load

        return load(self.workspace_arg)

    @cached_property
    def shape(self) -> Shape:
        from mailer.audience.shape import load_shape

        return load_shape(self.settings.path("lists"))

    @cached_property
    def db(self) -> Database:
        from mailer.db import open_database
        from mailer.settings import ensure_address_key

        return open_database(ensure_address_key(self.settings))

    def close(self) -> None:
        """Close the database if a command opened it (SQLite checkpoints its WAL on the last close)."""
        if "db" in self.__dict__:
            self.db.dispose()


EX_SOFTWARE = 70  # sysexits.h: an error in mailer itself (a bug): never a traceback, unless --debug
EX_IOERR = 74  # sysexits.h: a file or device could not be read or written


def _unexpected(exc: Exception) -> str:
    """One line saying what went wrong, for an exception mailer did not raise on purpose."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    # A database driver's error wrapped by SQLAlchemy: its own message, not the whole statement.
    inner = getattr(exc, "orig", None) if hasattr(exc, "statement") else None
    text = str(inner if isinstance(inner, BaseException) else exc).strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > 200:
        first = first[:200] + "…"
    name = type(inner if isinstance(inner, BaseException) else exc).__name__
    return f"{name}: {first}" if first else name


class MailerGroup(click.Group):
    """Turns a MailerError raised anywhere below into a clear message and its exit code, and any
    other exception into one line and exit code 70 (74 for a file that cannot be read or written);
    ``--debug`` (or ``MAILER_DEBUG=1``) lets it through with its traceback. click's own usage
    errors (exit 2) and aborts are left to click."""

    def invoke(self, ctx: click.Context) -> Any:
        from mailer.redact import redact

        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            if debug:
                raise
            click.secho(f"Error: {redact(str(exc))}", err=True, fg="red")
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if debug:
                raise
            code = EX_IOERR if isinstance(exc, OSError) and exc.strerror else EX_SOFTWARE
            message = redact(_unexpected(exc))
            click.secho(f"Error: {message} (run with --debug for the traceback)", err=True, fg="red")
            ctx.exit(code)


pass_app = click.make_pass_decorator(App)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON for scripts, or call ``human`` to print it for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        human()


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, for scripts.")
actor_option = click.option(
    "--as",
    "actor",
    metavar="NAME",
    help="Who is doing this, for the audit log (default: your login name on this machine).",
)


def actor_of(name: str | None) -> str:
    """Who the audit log names for a command: ``--as NAME``, else the OS user."""
    import getpass

    if name and name.strip():
        return name.strip()
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):
        return "(command line)"


@click.group(cls=MailerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MAILER_WORKSPACE",
    help="The workspace folder (mailer.toml, lists/, campaigns/, templates/). "
    "Default: $MAILER_WORKSPACE, else the current folder.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="MAILER_DEBUG",
    help="Show the traceback of an unexpected error instead of one line (also MAILER_DEBUG=1).",
)
@click.version_option(__version__, prog_name="mailer")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, debug: bool) -> None:
    """mailer: the right message to the right members, on time, with a way out that always works.

    \b
    Start here:
      mailer demo                       the whole story in ./demo: lists, members, a newsletter sent
      mailer init DIR                   a new workspace for your network
      mailer doctor                     is it ready to mail real people? each problem with its fix
      mailer lists import FILE.csv      import members (never resubscribes anyone who left)
      mailer lists count EXPR           how many members a segment reaches
      mailer campaigns new|check SLUG   write and check an issue
      mailer campaigns preview SLUG     see what a member would get
      mailer campaigns send SLUG        send it (--test ADDRESS first)
      mailer serve                      the members' web app (unsubscribe, preferences, sign-up)
      mailer inbound process SOURCE     bounces, complaints, mailed unsubscribes
      mailer worker                     on PostgreSQL: share sends across processes and machines
      mailer backup FILE                the database in one file (`mailer restore FILE` brings it back)
    """
    ctx.obj = App(workspace)
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    try:
        cli(prog_name="mailer")
    finally:
        # The process ends here (click exits). Left to itself, Python's shutdown would sweep every
        # object a send made for cycles, a few tenths of a second of a short command; the database
        # is closed already, and what is left goes with the process.
        gc.freeze()


# Command groups register themselves on `cli` when imported.
from mailer.cli import (  # noqa: E402, F401
    backup,
    campaigns,
    db,
    dkim,
    doctor,
    inbound,
    lists,
    members,
    purge,
    reports,
    secret,
    sending,
    serve,
    setup,
    users,
    workers,
)

if __name__ == "__main__":  # pragma: no cover
    main()
