"""ttrpg.defaults is the truth: every default there is read by some module, and says why it has its value."""

from __future__ import annotations

import ast
from pathlib import Path

import ttrpg
from ttrpg import defaults

PACKAGE = Path(ttrpg.__file__).resolve().parent
DEFAULTS = Path(defaults.__file__).resolve()


def _defaults() -> tuple[list[str], dict[str, str | None]]:
    """The UPPERCASE names defaults.py assigns, in order, and the docstring after each."""
    body = ast.parse(DEFAULTS.read_text()).body
    names: list[str] = []
    docs: dict[str, str | None] = {}
    for i, node in enumerate(body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                names.append(target.id)
                after = body[i + 1] if i + 1 < len(body) else None
                docs[target.id] = after.value.value if isinstance(after, ast.Expr) and isinstance(
                    after.value, ast.Constant) and isinstance(after.value.value, str) else None
    return names, docs


def _readers() -> dict[str, set[str]]:
    """Every name read as ``defaults.NAME`` or imported from ttrpg.defaults, with the modules doing it."""
    read: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() == DEFAULTS:
            continue
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text(), filename=where)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "defaults":
                read.setdefault(node.attr, set()).add(where)
            elif isinstance(node, ast.ImportFrom) and node.module == "ttrpg.defaults":
                for alias in node.names:
                    read.setdefault(alias.name, set()).add(where)
    return read


def test_every_default_is_read_somewhere():
    names, _ = _defaults()
    assert len(names) > 40
    read = _readers()
    unread = [name for name in names if name not in read]
    assert not unread, f"defaults nothing in ttrpg/ reads (use them, or remove them): {unread}"


def test_every_default_says_why():
    names, docs = _defaults()
    missing = [name for name in names if not (docs[name] or "").strip()]
    assert not missing, f"defaults without a docstring: {missing}"


def test_readers_name_only_real_defaults():
    names, _ = _defaults()
    unknown = {name: sorted(where) for name, where in _readers().items() if name not in names and name != "*"}
    assert not unknown, f"reads of names defaults.py does not define: {unknown}"
