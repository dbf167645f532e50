"""``mailer ARGS…`` run in this process, through click's ``CliRunner``, against a test's workspace.

The ``mailer_cli`` fixture (conftest.py) builds a ``MailerCli`` on the test's ``env``: the same
environment a ``mailer`` subprocess would get (MAILER_WORKSPACE, MAILER_DATABASE_URL,
MAILER_SECRET, plus whatever the test adds), set in ``os.environ`` for the length of each call
only. Standard input is empty and not a terminal unless ``input`` is given, as with a subprocess
whose stdin is a pipe. An exception that escapes the command exits 1 with its traceback on
stderr, as ``python -m mailer`` would. The databases the command opened are disposed of when it
returns, as its exit would close their connections.

A few tests still start real processes, where a separate process is the point: the console
script, signals, SIGKILL and resume, ``mailer worker``, ``mailer serve``, ``preview --watch``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner

import mailer.db


@dataclass(frozen=True)
class CliResult:
    """What ``mailer ARGS…`` did: its exit code, what it wrote to stdout and to stderr, and both
    as they were interleaved (``output``)."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    output: str

    def check(self) -> CliResult:
        """This result, or an AssertionError naming the command and its output if it failed."""
        assert self.exit_code == 0, (
            f"mailer {' '.join(self.args)} exited {self.exit_code}\n{self.stdout}{self.stderr}"
        )
        return self


@contextmanager
def _closing_databases() -> Iterator[None]:
    """Dispose of every database ``mailer.db.open_database`` opens inside the block."""
    real = mailer.db.open_database
    opened: list[mailer.db.Database] = []

    def open_database(*args: Any, **kwargs: Any) -> mailer.db.Database:
        database = real(*args, **kwargs)
        opened.append(database)
        return database

    mailer.db.open_database = open_database
    try:
        yield
    finally:
        mailer.db.open_database = real
        for database in opened:
            database.dispose()


class MailerCli:
    """Calls ``mailer ARGS…`` in-process with ``env`` as its environment (read at each call)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> CliResult:
        """Run ``mailer *args``; ``env`` is added to this call's environment, ``input`` is stdin;
        ``check=True`` fails the test if the command exits non-zero."""
        from mailer.cli import cli

        wanted = dict(self.env, **(env or {}))
        # Exactly the environment a subprocess given `wanted` would see: set what differs, unset
        # what it lacks (CliRunner restores os.environ afterwards).
        overrides: dict[str, str | None] = {k: v for k, v in wanted.items() if os.environ.get(k) != v}
        overrides.update({k: None for k in os.environ if k not in wanted})
        with _closing_databases():
            result = CliRunner().invoke(cli, list(args), input=input, env=overrides, prog_name="mailer")
        stderr, output = result.stderr, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert result.exc_info is not None
            trace = "".join(traceback.format_exception(*result.exc_info))
            stderr, output = stderr + trace, output + trace
        done = CliResult(tuple(args), result.exit_code, result.stdout, stderr, output)
        return done.check() if check else done
