"""The rooms of the package and which may import which (docs/architecture.md, "Who may import what").

Every import between two rooms of ``talkinghead`` — at module level or inside a function, but not
under ``if TYPE_CHECKING:`` — must go from a higher room to a lower one in :data:`LAYERS`. A new room
must be placed in the list (and in the architecture page) before it can import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "talkinghead"

#: Lowest first. A room may import only rooms that stand before it.
LAYERS: tuple[str, ...] = (
    "errors",
    "hookspecs",
    "deadline",
    "values",
    "text",
    "stages",
    "plugins",
    "cache",
    "options",
    "output",
    "io",
    "conversation",
    "expression",
    "checkpoints",
    "weights",
    "face",
    "onnx",
    "streaming",
    "backends",
    "avatar",
    "eval",
    "batch",
    "server",
    "integrations",
    "testing",
    "cli",
    "__init__",
)


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(SRC.parent).with_suffix("")
    module = ".".join(rel.parts)
    package = module[: -len(".__init__")] if module.endswith(".__init__") else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import x, y
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in out if t.startswith("talkinghead.") and t != "talkinghead.__version__"]


def _files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "static" not in p.parts)


def test_every_room_is_placed():
    rooms = {_room(".".join(p.relative_to(SRC.parent).with_suffix("").parts)) for p in _files()}
    assert rooms <= set(LAYERS), f"place these rooms in LAYERS and docs/architecture.md: {rooms - set(LAYERS)}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_go_down(path):
    here = _room(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
    rank = {room: i for i, room in enumerate(LAYERS)}
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if _room(target) != here and rank.get(_room(target), 0) > rank[here]
    ]
    assert not upward, f"{here} imports rooms above it: {upward}"


def test_no_merge_conflict_markers_are_committed():
    root = SRC.parents[1]
    files = [root / "README.md", root / "CHANGELOG.md", root / "pyproject.toml", root / "Makefile"]
    for folder in ("src", "tests", "docs", "bench", "examples"):
        files += [p for p in (root / folder).rglob("*") if p.suffix in {".py", ".md", ".js", ".html", ".css", ".toml"}]
    marked = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                marked.append(f"{path.relative_to(root)}:{number}")
    assert not marked, f"merge conflict markers: {marked}"
