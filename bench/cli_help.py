"""How long `mailer --help` and `mailer lists --help` take: the start-up cost of every command.

The anchor is the same two commands on the code before the restructure (commit 4e5e7d3, taken out
of git into a temporary folder), measured in the same run, and Python starting and importing click
alone (the floor). Each figure is the median of --rounds runs of a fresh process.

    .venv/bin/python bench/cli_help.py            # target: <= 0.3 s each
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_header

REPO = Path(__file__).resolve().parent.parent
BEFORE = "4e5e7d3"  # the last commit before "The tree is the pipeline"
RUN_CLI = "import sys; from mailer.cli import main; sys.argv[0] = 'mailer'; main()"


def timed(args: list[str], pythonpath: Path, rounds: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, cwd=pythonpath)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def checkout(rev: str, into: Path) -> Path:
    """The ``mailer`` package as it was at ``rev``, unpacked into ``into``."""
    archive = subprocess.run(["git", "archive", rev, "mailer"], cwd=REPO, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with (default: %(default)s)")
    args = parser.parse_args()

    print_header()
    python = sys.executable
    floor = timed([python, "-c", "import click"], REPO, args.rounds)
    print(f"python + import click (floor)       {floor:6.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(args.before, Path(tmp))
        for argv in (["--help"], ["lists", "--help"]):
            now = timed([python, "-c", RUN_CLI, *argv], REPO, args.rounds)
            label = "mailer " + " ".join(argv)
            verdict = "ok" if now <= 0.3 else "OVER the 0.3 s target"
            try:
                before = timed([python, "-c", RUN_CLI, *argv], old, args.rounds)
            except subprocess.CalledProcessError:  # the old code needs a library no longer installed
                print(
                    f"{label:<36}{now:6.3f} s   {now / floor:4.1f}x the floor   {verdict}   "
                    f"(before ({args.before}) cannot run here: it needs PyYAML)"
                )
                continue
            print(
                f"{label:<36}{now:6.3f} s   before ({args.before}) {before:6.3f} s   "
                f"{before / now:4.1f}x faster   {verdict}"
            )


if __name__ == "__main__":
    main()
