"""The rooms of docs/architecture.md hold: each imports only what it may, no module imports
itself in a circle (imports inside functions count too), and SQL lives in the storage
rooms. Read from the source with ``ast``, so nothing is imported to check it."""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("protocol", "archive", "sandbox", "receiver")
# What each room may import besides the standard library and itself.
ALLOWED = {
    "protocol": {"marshmallow"},
    "archive": {"protocol", "sqlite_utils", "PIL", "requests", "urllib3", "boto3", "botocore"},
    "sandbox": {"protocol", "archive", "flask", "werkzeug", "PIL", "requests"},
    "receiver": {"protocol", "archive", "sandbox", "flask", "flask_wtf", "werkzeug", "marshmallow",
                 "requests", "urllib3", "click", "gunicorn", "gevent", "prometheus_client",
                 "PIL"},
}
# The archive may use only these of the storage rooms' neighbours (pricing for the sandbox
# lives in archive/, and so do the SQLite helpers both stores use).
SANDBOX_FROM_ARCHIVE = {"archive.pricing", "archive.sqlite", "archive.keyfile"}
# receiver/ imports the sandbox only where it mounts it or serves it alone.
MOUNTS_SANDBOX = {"receiver", "receiver.config", "receiver.cli"}
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|WITH)\s+\S"
                 r"|\b(INSERT INTO|DELETE FROM|UPDATE \w+ SET|SELECT .+ FROM)\b")


def modules():
    """``{dotted name: path}`` of every module of the four rooms."""
    found = {}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def imports(name, path):
    """Every module ``name`` imports, anywhere in it, as dotted names."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names
                       if f"{base}.{alias.name}" in MODULES)
    return out


def third_party(imported):
    top = imported.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ROOMS


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_room_imports_only_what_it_may(name):
    room = name.split(".")[0]
    wrong = []
    for imported in imports(name, MODULES[name]):
        top = imported.split(".")[0]
        if top == room or top in sys.stdlib_module_names:
            continue
        if top not in ALLOWED[room]:
            wrong.append(imported)
        elif room == "sandbox" and top == "archive" and imported not in SANDBOX_FROM_ARCHIVE:
            wrong.append(imported)
        elif room == "receiver" and top == "sandbox" and name not in MOUNTS_SANDBOX:
            wrong.append(imported)
    assert not wrong, f"{name} may not import {sorted(wrong)} (docs/architecture.md)"


def test_no_module_imports_itself_in_a_circle():
    graph = {name: {m for m in imports(name, path) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    # A package's __init__ importing its own submodules is how a package is built, not a
    # circle between rooms of code.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


def strongly_connected(graph):
    """Tarjan's strongly connected components of ``graph`` (iterative enough for ours)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def sql_strings(path):
    """The string constants of ``path`` that read as SQL."""
    tree = ast.parse(path.read_text())
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and SQL.search(node.value)]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(("receiver",
                                                                            "protocol"))))
def test_sql_lives_in_the_storage_rooms(name):
    """The web app and the protocol run no SQL: the catalogue's is in archive/, the
    sandbox's own state (Runware's, not ours) in sandbox/state.py."""
    assert not sql_strings(MODULES[name])


def test_the_sql_check_sees_sql():
    assert sql_strings(ROOT / "archive" / "recovery.py")
    assert not sql_strings(ROOT / "receiver" / "api.py")
