"""The hostile corpora's cases (tests/hostile/, see its README) and what a handled outcome is.

A ``Case`` is one input with its ``# expect:`` line (``exit=2 shows="..."``); ``block_cases`` reads
a file of blank-line-separated cases; ``assert_handled`` checks a command's outcome against one: the
expected exit, no traceback, a short message with every text it must show. ``form_values`` are the
string cases of ``http/form-values.txt`` that every posted field gets; ``CONTROL`` matches the
control characters none of them may leave in what is stored.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from support.cli_runner import CliResult

HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
PASSWORD = "s3cr3t-PASSWORD"


@dataclass
class Case:
    name: str
    body: bytes  # the input, without the leading comment lines for CSV cases
    expect: dict[str, list[str]] = field(default_factory=dict)

    def one(self, key: str, default: str | None = None) -> str | None:
        values = self.expect.get(key)
        return values[-1] if values else default

    @property
    def exit(self) -> int:
        return int(self.one("exit", "0") or 0)

    def __str__(self) -> str:
        return self.name


def parse_expect(line: str) -> dict[str, list[str]]:
    """``exit=2 shows="a b" shows=c`` → {"exit": ["2"], "shows": ["a b", "c"]}."""
    out: dict[str, list[str]] = {}
    for word in shlex.split(line.removeprefix("# expect:")):
        key, _, value = word.partition("=")
        out.setdefault(key, []).append(value)
    return out


def expectations(lines: list[str]) -> dict[str, list[str]]:
    found = [line for line in lines if line.startswith("# expect:")]
    assert len(found) == 1, "each case has one '# expect:' line"
    assert any(line.startswith("# attacks:") for line in lines), "each case says what it attacks"
    return parse_expect(found[0])


def assert_handled(result: CliResult, case: Case, *, max_lines: int = 12) -> None:
    """A handled outcome: the expected exit code, no traceback, a short message holding every
    ``shows`` text."""
    output = result.stdout + result.stderr
    shown = f"mailer {' '.join(a[:80] for a in result.args)} exited {result.exit_code}:\n{output[:3000]}"
    assert "Traceback" not in output, shown
    assert result.exit_code not in (70, 74), shown
    assert result.exit_code == case.exit, shown
    for text in case.expect.get("shows", []):
        assert text in output, f"{text!r} not shown\n{shown}"
    if case.exit != 0:
        assert len(output.splitlines()) <= max_lines, shown


def block_cases(path: Path, *, expect: str | None = None, escapes: bool = False) -> list[Case]:
    """The cases of a file of blocks separated by blank lines, after a first block about the file:
    each block one value line, an ``# attacks:`` line that names the case, and an ``# expect:``
    line (or ``expect``, the same for every case). ``escapes``: ``\\e`` in a value is ESC."""
    cases = []
    for block in path.read_text(encoding="utf-8").split("\n\n")[1:]:
        lines = block.strip("\n").splitlines()
        (value,) = [line for line in lines if not line.startswith("#")]
        attack = next(line for line in lines if line.startswith("# attacks:"))
        name = re.sub(r"[^a-z0-9]+", "-", attack.removeprefix("# attacks:").lower()).strip("-")[:60]
        if escapes:
            value = value.replace("\\e", "\x1b")
        cases.append(Case(name, value.encode(), parse_expect(expect) if expect else expectations(lines)))
    return cases


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def form_values() -> list[tuple[str, str]]:
    """The string cases of ``http/form-values.txt`` (see its README): (what it attacks, value)."""
    out: list[tuple[str, str]] = []
    attacks, times = "", 1
    for line in (HOSTILE / "http" / "form-values.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("# attacks:"):
            attacks = line.removeprefix("# attacks:").strip()
        elif line.startswith("# times:"):
            times = int(line.removeprefix("# times:"))
        elif line.strip() and not line.startswith("#"):
            value = json.loads(line)
            if isinstance(value, dict):
                value = value.get("prefix", "") + value["repeat"] * value["times"] + value.get("suffix", "")
            if isinstance(value, str):
                out.append((attacks, value * times))
            attacks, times = "", 1
    assert len(out) > 10
    return out
