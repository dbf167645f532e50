"""The tree is the pipeline: each stage imports only earlier stages and the foundations.

Reads every module under ``mailer/`` with ``ast`` (imports inside functions included, since a lazy
import is still a dependency) and checks the direction of every import against the stage order
below, that the module-level imports have no cycle, and that no module is over 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailer"
MAX_LINES = 600

# Earliest first. A module may import modules of its own stage or of an earlier one, never a later one.
STAGES: list[tuple[str, ...]] = [
    ("mailer", "mailer.errors"),
    ("mailer.settings", "mailer.slots"),
    ("mailer.models",),
    ("mailer.db", "mailer.migrations", "mailer.tokens"),
    ("mailer.workspace",),
    ("mailer.audience",),
    ("mailer.issue",),
    ("mailer.forms",),
    ("mailer.compose",),
    ("mailer.render", "mailer.identity"),
    ("mailer.message",),
    ("mailer.transport",),
    ("mailer.sending",),
    ("mailer.inbound",),
    ("mailer.reports",),
    ("mailer.preview",),
    ("mailer.desk",),
    ("mailer.web",),
    ("mailer.demo",),
    ("mailer.cli", "mailer.__main__"),
]


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


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The ``mailer`` modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module-level, and inside `if TYPE_CHECKING:` is not an import at run time
        nodes = [n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)]
    found: set[str] = set()
    for node in nodes:
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


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations/versions" not in p.as_posix())


def test_every_import_points_to_an_earlier_stage() -> None:
    wrong = []
    for path in modules():
        me = module_name(path)
        for target in sorted(imports_of(path)):
            if stage_of(target) > stage_of(me):
                wrong.append(f"{me} imports {target}, a later stage")
    assert wrong == []


def test_module_level_imports_have_no_cycle() -> None:
    """Modules that import each other at load time form one strongly connected group; the only
    such groups allowed are a package with its own submodules (it re-exports what they define)."""
    graph = {module_name(p): imports_of(p, top_level_only=True) for p in modules()}
    bad = [group for group in strongly_connected(graph) if len(group) > 1 and not _one_package(group)]
    assert bad == []


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


def outside_imports(path: Path) -> set[str]:
    """The names of the modules outside ``mailer`` that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
