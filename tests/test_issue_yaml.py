"""The desk's rewrites of issue files, as a property over every issue file the repository holds.

For each demo, fixture, golden and hostile issue file the desk can open, seeded random sequences of
the desk's edits (set a field, add or drop a key, insert, remove or move an item, empty a list) are
applied with the desk's library (``mailer.desk.issuefile``), and what is written must:

- load with the issue loader (``mailer.issue.yaml_loader.read_yaml``) with no problem;
- read as exactly the data the edits meant, keys in the order meant;
- keep every comment that was not on a removed field or item (a comment is on the entry it stands
  above, or beside), each on the same entry as before the write.

docs/issue-files.md, "One YAML engine", says why.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailer.desk.issuefile import add_item, drop, edit, put, to_yaml
from mailer.issue.load import load_issue
from mailer.issue.rewrite import anchor_comments, rewrite, settle
from mailer.issue.schema import Newsletter
from mailer.issue.yaml_loader import issue_yaml, read_yaml

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted(
    p
    for pattern in ("campaigns/*/issue.yaml", "tests/fixtures/**/*.yaml", "tests/hostile/yaml/*.yaml")
    for p in REPO.glob(pattern)
)
SEQUENCES = 3  # per file; one for a file of more than LARGE bytes (the demo issues)
LARGE = 8_000
STEPS = 6  # edits per sequence, at most
TEXTS = [
    "plain words",
    "yes",
    "no",
    "off",
    "12:30",
    "0x1F",
    "010",
    "1e3",
    "2025-12-01",
    "a: b",
    "# not a comment",
    "- a dash",
    "two\nlines\n",
    "",
    " leading space",
    "null",
    "~",
    "%YAML 1.1",
    "quote \" and ' marks",
    "ünïcödé 😀",
    "[not, a, list]",
    "&anchor *alias !tag",
]

Path_ = tuple[str | int, ...]


def editable(path: Path) -> bool:
    """Whether the desk opens the file: it reads as a set of fields with no problem."""
    problems: list[Any] = []
    data, _ = read_yaml(path.read_text(encoding="utf-8"), path, problems)
    return not problems and isinstance(data, dict)


def distinct(paths: list[Path]) -> list[Path]:
    """The first of each set of files with the same text (a fixture may copy a demo issue)."""
    seen: set[str] = set()
    out = []
    for p in paths:
        text = p.read_text(encoding="utf-8")
        if text not in seen:
            seen.add(text)
            out.append(p)
    return out


EDITABLE = distinct([p for p in CORPUS if editable(p)])


def ordered(value: Any) -> Any:
    """Data with the order of keys made part of it (== on dicts ignores it)."""
    if isinstance(value, dict):
        return [(str(k), ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def plain_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def entries(node: Any) -> list[Any]:
    if isinstance(node, CommentedMap):
        return list(node.keys())
    if isinstance(node, CommentedSeq):
        return list(range(len(node)))
    return []


def comment_lines(slot: Any, seen: set[int]) -> Iterator[str]:
    """The comment lines of a comment slot (a token, a list of them, None), each token once."""
    if isinstance(slot, list):
        for part in slot:
            yield from comment_lines(part, seen)
    elif slot is not None and hasattr(slot, "value") and id(slot) not in seen:
        seen.add(id(slot))
        yield from (line.strip() for line in str(slot.value).splitlines() if line.strip().startswith("#"))


def comments(node: Any, where: Path_ = (), seen: set[int] | None = None) -> Counter[tuple[str, Path_]]:
    """Every comment line of a round-trip document, with the entry it is on."""
    seen = set() if seen is None else seen
    out: Counter[tuple[str, Path_]] = Counter()
    if not isinstance(node, CommentedMap | CommentedSeq):
        return out
    for line in comment_lines([node.ca.comment, node.ca.end], seen):
        out[(line, where)] += 1
    for entry in entries(node):
        for line in comment_lines(node.ca.items.get(entry), seen):
            out[(line, (*where, entry))] += 1
        out += comments(node[entry], (*where, entry), seen)
    return out


def texts(found: Counter[tuple[str, Path_]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (line, _), n in found.items():
        out[line] += n
    return out


def containers(node: Any, kind: type, where: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(node, kind):
        yield where, node
    for entry in entries(node):
        yield from containers(node[entry], kind, (*where, entry))


def model_at(model: Any, where: Path_) -> Any:
    for part in where:
        model = model[part]
    return model


class Edits:
    """One seeded sequence of the desk's edits, made on the round-trip document and on a plain copy
    of the data (what the result must read as), counting the comments on what is removed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.removed: Counter[str] = Counter()
        self.model: Any = None
        self.before: Counter[str] = Counter()
        self.after: Counter[tuple[str, Path_]] = Counter()
        self.count = 0
        self.log: list[str] = []

    def __call__(self, doc: MutableMapping[str, Any]) -> None:
        self.model = plain_copy(doc)
        self.before = texts(comments(doc))
        for _ in range(self.rng.randint(1, STEPS)):
            self.rng.choice(
                [self.set_field, self.add_key, self.drop_key, self.insert, self.remove, self.move, self.empty]
            )(doc)
        settle(doc)  # as the write does
        self.after = comments(doc)

    def value(self) -> str:
        return self.rng.choice(TEXTS)

    def on_removed(self, container: Any, entry: Any) -> None:
        seen: set[int] = set()
        self.removed += texts(
            Counter((line, ()) for line in comment_lines(container.ca.items.get(entry), seen))
        )
        self.removed += texts(comments(container[entry], (), seen))

    def set_field(self, doc: Any) -> None:
        choices = [
            (where, m, k)
            for where, m in containers(doc, CommentedMap)
            for k in m
            if not isinstance(m[k], dict | list)
        ]
        if choices:
            where, m, k = self.rng.choice(choices)
            text = self.value()
            m[k] = to_yaml(text)
            model_at(self.model, where)[k] = text
            self.log.append(f"set {where}.{k} = {text!r}")

    def add_key(self, doc: Any) -> None:
        where, m = self.rng.choice(list(containers(doc, CommentedMap)))
        self.count += 1
        key, text = f"added-{self.count}", self.value()
        after = self.rng.choice(list(m)) if m else None
        put(m, key, to_yaml(text), after=after)
        target = model_at(self.model, where)
        pairs = list(target.items())
        at = [k for k, _ in pairs].index(after) + 1 if after is not None else len(pairs)
        pairs.insert(at, (key, text))
        self.log.append(f"add {where}.{key} after {after}")
        target.clear()
        target.update(pairs)

    def drop_key(self, doc: Any) -> None:
        choices = [
            (where, m, k) for where, m in containers(doc, CommentedMap) for k in m if where or k != "kind"
        ]
        if choices:
            where, m, k = self.rng.choice(choices)
            self.on_removed(m, k)
            self.log.append(f"drop {where}.{k}")
            drop(m, k)
            del model_at(self.model, where)[k]

    def seqs(self, doc: Any, *, least: int = 0) -> list[tuple[Path_, Any]]:
        return [(w, s) for w, s in containers(doc, CommentedSeq) if len(s) >= least]

    def insert(self, doc: Any) -> None:
        choices = self.seqs(doc)
        if not choices:
            return
        where, s = self.rng.choice(choices)
        self.count += 1
        item: Any
        if not s or all(isinstance(v, dict) for v in s):
            item = {"id": f"new-{self.count}", "title": self.value()}
        else:
            item = self.value()
        at = self.rng.randint(0, len(s))
        s.insert(at, to_yaml(item))
        self.log.append(f"insert {where}[{at}]")
        model_at(self.model, where).insert(at, item)

    def remove(self, doc: Any) -> None:
        choices = self.seqs(doc, least=1)
        if choices:
            where, s = self.rng.choice(choices)
            at = self.rng.randrange(len(s))
            self.on_removed(s, at)
            self.log.append(f"remove {where}[{at}]")
            del s[at]
            del model_at(self.model, where)[at]

    def move(self, doc: Any) -> None:
        choices = [(w, s) for w, s in self.seqs(doc, least=2) if all(isinstance(v, dict) for v in s)]
        if choices:
            where, s = self.rng.choice(choices)
            i, j = self.rng.randrange(len(s)), self.rng.randrange(len(s))
            s.insert(j, s.pop(i))
            self.log.append(f"move {where}[{i}] to [{j}]")
            target = model_at(self.model, where)
            target.insert(j, target.pop(i))

    def empty(self, doc: Any) -> None:
        choices = self.seqs(doc, least=1)
        if choices:
            where, s = self.rng.choice(choices)
            self.log.append(f"empty {where}")
            while s:
                self.on_removed(s, len(s) - 1)
                if isinstance(s[-1], dict):
                    del s[-1]  # as the desk empties a list of links
                else:  # ruamel.yaml renumbers the comments of a list wrongly on del s[-1]
                    del s[len(s) - 1]
            model_at(self.model, where).clear()


HEAD = re.compile(r"\s*((?:- )*)([^:#\s][^:#]*:)?")
TAG = re.compile(r"#(c\d+) (above|beside)$")


def head(row: str, *, item: bool = False) -> str:
    """How an entry's line starts: ``title:``, ``- id:``; with ``item``, an item's line as an item's
    (``- ``: the comment above it is the item's, whatever its first field)."""
    found = HEAD.match(row)
    if found is None:
        return ""
    return found.group(1) if item and found.group(1) else found.group(1) + (found.group(2) or "")


def decorate(text: str, path: Path) -> tuple[str, dict[str, str]]:
    """``text`` with a comment above every field and item (at its line's indentation) and beside
    every key whose value starts below it (``items:``), each tagged: ``#c12 above``; and how the line
    of each tag's entry starts. ``text`` unchanged if the comments would change its data."""
    data, lines = read_yaml(text, path, [])
    starts = {at.line for loc, at in lines.items() if loc}
    heads: dict[str, str] = {}
    out = []
    for number, row in enumerate(text.splitlines(keepends=True), 1):
        if number in starts and row.strip() and not row.lstrip().startswith("#"):
            heads[f"c{number}"] = head(row, item=True)
            out.append(" " * (len(row) - len(row.lstrip(" "))) + f"#c{number} above\n")
            if row.rstrip().endswith(":") and "#" not in row:
                heads[f"c{number}b"] = head(row)
                row = row.rstrip() + f"  #c{number}b beside\n"
        out.append(row)
    decorated = "".join(out)
    problems: list[Any] = []
    if ordered(read_yaml(decorated, path, problems)[0]) != ordered(data) or problems:
        return text, {}
    return decorated, heads


def check_places(written: str, heads: dict[str, str]) -> None:
    """Each tagged comment still in ``written`` is above (or beside) a line that starts as its
    entry's did."""
    rows = written.splitlines()
    for number, row in enumerate(rows):
        found = TAG.search(row.strip()) if "#c" in row else None
        if found is None:
            continue
        tag, where = found.groups()
        if where == "beside":
            assert head(row) == heads[tag], (tag, row, written)
            continue
        below = next((r for r in rows[number + 1 :] if r.strip() and not r.lstrip().startswith("#")), "")
        full = head(below)
        # an item's comment, or its first field's (the item's line starts with both)
        assert heads[tag] in (head(below, item=True), full, full.lstrip("- ")), (tag, below, written)


def reloaded_comments(text: str) -> Counter[tuple[str, Path_]]:
    doc = issue_yaml(text).load(text)
    anchor_comments(doc)
    return comments(doc)


@pytest.mark.parametrize("path", EDITABLE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_desks_edits_write_what_they_mean_and_keep_the_comments(path: Path) -> None:
    text, heads = decorate(path.read_text(encoding="utf-8"), path)
    loaded = issue_yaml(text).load(text)
    assert texts(comments(loaded)) == texts(reloaded_comments(text)), "giving comments to entries loses none"
    for n in range(1 if len(text) > LARGE else SEQUENCES):
        edits = Edits(random.Random(f"{path.name}-{n}"))
        written = rewrite(text, edits)
        problems: list[Any] = []
        data, _ = read_yaml(written, path, problems)
        assert problems == [], (edits.log, [str(p) for p in problems], written)
        assert ordered(data) == ordered(edits.model), (edits.log, written)
        again = reloaded_comments(written)
        lost = (edits.before - edits.removed) - texts(again)
        assert texts(again) == edits.before - edits.removed, (edits.log, "lost", lost, written)
        assert again == edits.after, (edits.log, "a comment moved to another entry", written)
        check_places(written, heads)


def test_the_corpus_is_every_issue_file() -> None:
    names = {str(p.relative_to(REPO)) for p in EDITABLE}
    golden = REPO / "tests/fixtures/campaigns/2025-11-kent-network/issue.yaml"  # the golden issue
    assert (
        golden in CORPUS
        and golden.read_bytes() == (REPO / "campaigns/2025-11-kent-network/issue.yaml").read_bytes()
    )
    assert {
        "campaigns/2025-11-echr-alert/issue.yaml",
        "campaigns/2025-11-kent-network/issue.yaml",
        "campaigns/2025-12-central-england/issue.yaml",
    } <= names
    assert len(EDITABLE) >= 20
    decorated = [p for p in EDITABLE if decorate(p.read_text(encoding="utf-8"), p)[1]]
    assert len(decorated) >= len(EDITABLE) - 2, "nearly every file is tried with a comment at every entry"


def test_every_item_removed_then_one_added_back_through_the_library(tmp_path: Path) -> None:
    """The desk's library (``edit``, ``add_item``): each write loads; the emptied list is ``[]`` on
    its key's line, with the key's comment; the comment above the next key stays there."""
    slug = "2025-12-central-england"
    path = tmp_path / "campaigns" / slug / "issue.yaml"
    path.parent.mkdir(parents=True)
    text = (REPO / "campaigns" / slug / "issue.yaml").read_text(encoding="utf-8")
    text = text.replace("items:\n", "items:  # the sections, in order\n", 1)
    path.write_text(text.replace("calendar:", "# the dated entries\ncalendar:", 1), encoding="utf-8")

    def remove_first(doc: MutableMapping[str, Any]) -> None:
        del doc["items"][0]

    while read_yaml(path.read_text(encoding="utf-8"), path, [])[0]["items"]:
        edit(tmp_path, slug, remove_first, expected_version=None)
        problems: list[Any] = []
        read_yaml(path.read_text(encoding="utf-8"), path, problems)
        assert problems == [], path.read_text(encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert "\nitems: [] # the sections, in order\n\n# the dated entries\ncalendar:" in text, text
    item = {"id": "winter-appeal", "title": "Winter appeal", "highlight": "give a coat", "body": "Coats.\n"}
    add_item(tmp_path, slug, item, expected_version=None)
    issue = load_issue(path, None).issue
    assert isinstance(issue, Newsletter) and [i.id for i in issue.items] == ["winter-appeal"]
    text = path.read_text(encoding="utf-8")
    assert re.search(r"\nitems: +# the sections, in order\n  - id: winter-appeal\n", text), text
    assert "\n# the dated entries\ncalendar:" in text
