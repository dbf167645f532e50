"""The tree is the pipeline: each stage imports only earlier stages and the foundations.

Reads every module under ``mailer/`` with ``ast`` (imports inside functions included, since a lazy
import is still a dependency) and checks the direction of every import against the stage order
below, that no modules import each other (a lazy import hides a knot, it does not untie it; only
imports under ``if TYPE_CHECKING:``, which never run, are left out), that the audience's map is
layered (``tree ← segments ← networks ← shape``), that no module is over 600 lines, and that the
web pages hold no SQL or ORM query (they parse the request, call the library, render). The
tests follow one rule of their own: shared helpers live in tests/support/ (or a conftest.py), and no
test file imports another.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailer"
MAX_LINES = 600

# Earliest first. A module may import modules of its own stage or of an earlier one, never a later one.
STAGES: list[tuple[str, ...]] = [
    ("mailer", "mailer.errors"),
    ("mailer.forms",),  # a foundation: the sign-up and preferences forms are the audience's
    ("mailer.setting_values", "mailer.settings", "mailer.slots", "mailer.secret_key"),
    ("mailer.models",),
    ("mailer.db", "mailer.migrations", "mailer.tokens", "mailer.limits"),
    ("mailer.backup",),  # the database in one file and back: it opens the database, nothing more
    ("mailer.workspace",),
    ("mailer.audience",),
    ("mailer.issue",),
    ("mailer.compose",),
    # events: the calendar entries of sent issues as a table, and answers to them; reads compose's
    # calendar entries, and the send (sending.snapshot) keeps the table in step as it enqueues
    ("mailer.events",),
    ("mailer.render", "mailer.identity"),
    ("mailer.message",),
    ("mailer.transport", "mailer.readiness", "mailer.dnscheck"),
    ("mailer.sending", "mailer.doctor"),
    ("mailer.events.watch",),  # the events-sync chore: the workers' Chore, over mailer.events
    ("mailer.inbound",),
    ("mailer.reports", "mailer.archive"),
    ("mailer.preview",),
    ("mailer.desk",),
    # members' rights: subject access, erasure and retention read every part's tables (the desk's
    # too) and the workers run its purge, so after the desk and before the chores' list
    ("mailer.rights",),
    # the events' mail (reminders, changes, digests): sent through the send's path, from the sent
    # issues' events and the desk's accepted ones and approvals; the workers' chores list them
    ("mailer.events.digest", "mailer.events.reminders"),
    ("mailer.chores",),  # the workers' chores, listed: reminders, purges, digests
    ("mailer.web",),
    ("mailer.demo",),
    ("mailer.cli", "mailer.__main__"),
]


@functools.cache
def parsed(source: str) -> ast.Module:
    """``source`` parsed once for every test here (the trees are only read)."""
    return ast.parse(source)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int:
    best, rank = "", -1
    for i, names in enumerate(STAGES):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, rank = name, i
    assert rank >= 0, f"{module} belongs to no stage: add it to STAGES in this test"
    return rank


def imports_of(path: Path, *, at_run_time: bool = False) -> set[str]:
    """The ``mailer`` modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module).
    ``at_run_time``: leave out the imports under ``if TYPE_CHECKING:``, which never run."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), at_run_time=at_run_time)


def imports_in(source: str, me: str, *, at_run_time: bool = False) -> set[str]:
    """The ``mailer`` modules ``source`` (module ``me``) imports, at module level or in a function."""
    tree = parsed(source)
    skipped = (
        {id(n) for block in _type_checking_blocks(tree) for n in ast.walk(block)} if at_run_time else set()
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mailer")
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{me}: use absolute imports (from mailer.x import y)"
            base = node.module or ""
            if base.split(".")[0] != "mailer":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found - {me}


def _type_checking_blocks(tree: ast.Module) -> list[ast.stmt]:
    """The statements under every ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) of ``tree``."""
    blocks: list[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = (
                test.id
                if isinstance(test, ast.Name)
                else test.attr
                if isinstance(test, ast.Attribute)
                else ""
            )
            if name == "TYPE_CHECKING":
                blocks += node.body
    return blocks


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations/versions" not in p.as_posix())


@pytest.mark.slow
def test_every_import_points_to_an_earlier_stage() -> None:
    wrong = []
    for path in modules():
        me = module_name(path)
        for target in sorted(imports_of(path)):
            if stage_of(target) > stage_of(me):
                wrong.append(f"{me} imports {target}, a later stage")
    assert wrong == []


def run_time_graph() -> dict[str, set[str]]:
    """Every module and the modules it imports when run, at module level or inside a function."""
    return {module_name(p): imports_of(p, at_run_time=True) for p in modules()}


def knots(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (directly or round a longer loop). A package and
    its own submodules may (it re-exports what they define, they use what it registers), but the
    submodules among themselves may not: each group of one package is checked again without it."""
    found = []
    for group in strongly_connected(graph):
        if len(group) < 2:
            continue
        if not _one_package(group):
            found.append(group)
            continue
        head = min(group, key=len)
        inner = {m: graph[m] & set(group) - {head} for m in group if m != head}
        found += knots(inner)
    return found


@pytest.mark.slow
def test_no_modules_import_each_other() -> None:
    """No knot in ``mailer/``: modules that import each other, at module level or lazily inside a
    function (imports under ``if TYPE_CHECKING:`` never run and are left out)."""
    graph = run_time_graph()
    found = [", ".join(group) + f": {_edges(graph, group)}" for group in knots(graph)]
    assert found == [], "untie these (move what both need to the earlier one):\n" + "\n".join(found)


def _edges(graph: dict[str, set[str]], group: list[str]) -> str:
    return "; ".join(f"{m} imports {t}" for m in group for t in sorted(graph[m] & set(group)))


def test_the_knot_check_sees_a_lazy_import() -> None:
    """A function-level import counts, an ``if TYPE_CHECKING:`` one does not; a knot among one
    package's submodules is a knot, the package's own re-exports are not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from mailer import errors\n"
        "if TYPE_CHECKING:\n"
        "    from mailer.settings import Settings\n"
        "def f() -> None:\n"
        "    from mailer.audience import segments\n"
        "    import mailer.models\n"
    )
    assert imports_in(source, "mailer.x", at_run_time=True) == {
        "mailer.errors",
        "mailer.audience.segments",
        "mailer.models",
    }
    assert "mailer.settings" in imports_in(source, "mailer.x")
    graph = {"p": {"p.a", "p.b"}, "p.a": {"p"}, "p.b": {"p", "p.c"}, "p.c": {"p.b"}, "q": {"r"}, "r": {"q"}}
    assert sorted(knots(graph)) == [["p.b", "p.c"], ["q", "r"]]


# The audience's map, earliest first: each may import only the ones before it.
AUDIENCE_MAP = (
    "mailer.audience.tree",
    "mailer.audience.segments",
    "mailer.audience.networks",
    "mailer.audience.shape",
)
#: What the region tree, plain data, never imports: the database, the files, the modules that use it.
NOT_IN_THE_TREE = (
    "sqlalchemy",
    "mailer.models",
    "mailer.db",
    "mailer.workspace",
    "tomllib",
    "csv",
    "pathlib",
)


def test_the_audience_map_is_layered() -> None:
    """``tree ← segments ← networks ← shape``: the tree is plain data; segments compile over it;
    networks answer "which network, speaking as whom" over it; shape reads the files and syncs."""
    wrong = []
    for i, me in enumerate(AUDIENCE_MAP):
        path = PACKAGE.parent.joinpath(*me.split(".")).with_suffix(".py")
        later = set(AUDIENCE_MAP[i + 1 :])
        wrong += [f"{me} imports {t}" for t in sorted(imports_of(path) & later)]
    tree = parsed((PACKAGE / "audience" / "tree.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("mailer.audience") or any(
                name == m or name.startswith(m + ".") for m in NOT_IN_THE_TREE
            ):
                wrong.append(f"mailer.audience.tree imports {name}")
    assert wrong == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected groups of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node] & graph.keys()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return groups


def _one_package(group: list[str]) -> bool:
    """Whether ``group`` is one package and modules inside it (``a``, ``a.b``, ``a.c``)."""
    head = min(group, key=len)
    return all(m == head or m.startswith(head + ".") for m in group)


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_no_module_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it by concern"


# --- the tests' own layout ---------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"


def python_files_of_the_tests() -> list[Path]:
    """Every Python file under tests/ but the vendored ones."""
    return sorted(p for p in TESTS.rglob("*.py") if "vendor" not in p.relative_to(TESTS).parts)


@pytest.mark.slow
def test_no_test_file_imports_another() -> None:
    """Shared helpers go to tests/support/ or a conftest.py; a ``test_*`` module is only collected."""
    found = []
    for path in python_files_of_the_tests():
        for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(TESTS)}:{node.lineno}: {n}" for n in names if n.startswith("test_")]
    assert found == [], "move what these import into a module of tests/support/:\n" + "\n".join(found)


def test_helpers_live_in_tests_support() -> None:
    """Under tests/ a Python file is a ``test_*`` module, a conftest.py, or a module of tests/support/
    (where no ``test_*`` module goes)."""

    def misplaced(path: Path) -> bool:
        if SUPPORT in path.parents:
            return path.name.startswith("test_")
        return not path.name.startswith("test_") and path.name != "conftest.py"

    loose = [str(p.relative_to(TESTS)) for p in python_files_of_the_tests() if misplaced(p)]
    assert loose == [], f"move these helpers into tests/support/ (and test modules out of it): {loose}"


# ---------------------------------------------------------------------------------------------
# No SQL or ORM query in the web pages

WEB = PACKAGE / "web"
#: Folders left out of the check (none: the desk's pages hold no query either).
WEB_EXCLUDED: tuple[Path, ...] = ()
#: Modules whose import is a query in the making: SQLAlchemy, and the tables.
QUERY_MODULES = ("sqlalchemy", "mailer.models")
#: Methods that run a statement (a session's, a connection's) or build one.
QUERY_CALLS = ("execute", "exec_driver_sql", "scalar", "scalars", "query")


def web_modules() -> list[Path]:
    return [p for p in sorted(WEB.rglob("*.py")) if not any(p.is_relative_to(d) for d in WEB_EXCLUDED)]


def queries_in(source: str) -> list[str]:
    """What in ``source`` imports a query module or calls a query method, by line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(parsed(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # from mailer import models: mailer.models
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_CALLS
        ):
            found.append((node.lineno, f"calls .{node.func.attr}("))
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in QUERY_MODULES):
                found.append((node.lineno, f"imports {name}"))
                break
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", web_modules(), ids=lambda p: module_name(p))
def test_no_sql_or_orm_query_in_the_web_pages(path: Path) -> None:
    """A page parses the request, calls the library (which takes a ``mailer.db.Session`` and
    returns typed values) and renders: it neither imports SQLAlchemy or the tables nor runs a
    statement."""
    found = queries_in(path.read_text(encoding="utf-8"))
    assert found == [], f"{path.relative_to(PACKAGE.parent)}: move the query into the library"


def test_the_query_check_sees_a_query() -> None:
    source = (
        "from sqlalchemy import select\n"
        "import mailer.models as m\n"
        "from mailer import db, models\n"
        "def f(session):\n"
        "    return session.execute(select(m.Member)).all(), session.scalar(1)\n"
    )
    assert queries_in(source) == [
        "line 1: imports sqlalchemy",
        "line 2: imports mailer.models",
        "line 3: imports mailer.models",
        "line 5: calls .execute(",
        "line 5: calls .scalar(",
    ]


# ---------------------------------------------------------------------------------------------
# The desk: a library under the pages


def imports_from(directory: Path, prefixes: tuple[str, ...]) -> list[str]:
    """``module imports name`` for every import (function-level ones too) under ``directory`` of
    a module named by one of ``prefixes`` or inside one (``sqlalchemy`` covers ``sqlalchemy.orm``)."""
    found = []
    for path in sorted(directory.rglob("*.py")):
        for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if any(name == p or name.startswith(p + ".") for p in prefixes):
                    found.append(f"{module_name(path)} imports {name}")
    return sorted(set(found))


def database_calls(directory: Path) -> list[str]:
    """Calls under ``directory`` that run SQL or open a session themselves (``.execute(``,
    ``.scalar(``, ``.scalars(``, ``.session(``): the library does that, the pages call it."""
    methods = {"execute", "scalar", "scalars", "session"}
    found = []
    for path in sorted(directory.rglob("*.py")):
        for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
            ):
                found.append(f"{module_name(path)}:{node.lineno} calls .{node.func.attr}(")
    return found


def test_the_desk_library_imports_nothing_from_the_web() -> None:
    assert imports_from(PACKAGE / "desk", ("mailer.web", "starlette")) == []


def test_the_desk_pages_hold_no_sql() -> None:
    """The desk's pages parse, call ``mailer.desk`` and render: no SQL, no ORM, no session."""
    desk_pages = PACKAGE / "web" / "desk"
    assert imports_from(desk_pages, ("sqlalchemy", "mailer.models")) == []
    assert database_calls(desk_pages) == []


def outside_imports(path: Path) -> set[str]:
    """The names of the modules outside ``mailer`` that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] != "mailer"}


def yaml_library(module: str) -> str | None:
    """The YAML library a module belongs to (``ruamel.yaml.comments`` → ``ruamel.yaml``), if any."""
    parts = module.split(".")
    for n in range(1, len(parts) + 1):
        if "yaml" in parts[n - 1].lower():
            return ".".join(parts[:n])
    return None


@pytest.mark.slow
def test_one_yaml_library() -> None:
    """Issue files are read and written by one YAML engine, under one YAML version
    (docs/issue-files.md, "One YAML engine"): ruamel.yaml, and no other YAML library, anywhere."""
    used: dict[str, list[str]] = {}
    for path in modules():
        for name in outside_imports(path):
            library = yaml_library(name)
            if library:
                used.setdefault(library, []).append(module_name(path))
    assert set(used) == {"ruamel.yaml"}, used
