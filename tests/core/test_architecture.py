"""Table ownership and the order of the domains (app/domains.py), checked on the source.

Three rules, read from the code rather than trusted:
- no module imports another domain's `queries` (it calls that domain's service instead);
- only the owning domain's `queries.py` names a table in SQL, and only the owner's
  `models.py` maps it (`Table("…", …)`) for the toolkit's generic row operations;
- the domains import each other without a cycle, each only domains before it in `ORDER`.

An import counts wherever it is written, inside a function too: an import moved into a
function to dodge a cycle is still a dependency. Imports under `if TYPE_CHECKING:` and the
module names given to `strawberry.lazy(...)` do not count: GraphQL types may refer to each
other lazily. Each rule is also fed a synthetic violation, so a scan that sees nothing fails.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from app.domains import ORDER, OWNERS

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
MIGRATIONS = APP / "sql" / "migrations"

# Module path (relative to the repository, POSIX) -> source text.
Sources = Mapping[str, str]

# What the rules still find, being moved to the owners. Each list may only shrink: an entry
# that no longer occurs fails the test, so it is removed with the fix.
KNOWN_FOREIGN_SQL: frozenset[tuple[str, str]] = frozenset(
    {
        ("app/auth/queries.py", "tenants"),
        ("app/auth/queries.py", "users"),
        ("app/platform/models.py", "platform_audit_log"),
        ("app/platform/portability_queries.py", "tenants"),
        ("app/platform/portability_queries.py", "users"),
        ("app/platform/queries.py", "tenants"),
        ("app/rbac/queries.py", "users"),
    }
)
KNOWN_QUERIES_IMPORTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("app/platform/impersonation.py", "app.tenants.queries"),
        ("app/platform/lifecycle.py", "app.tenants.queries"),
        ("app/platform/tenant_import.py", "app.tenants.queries"),
    }
)
# Domain imports that still go up the order (they form the cycles).
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {
        ("audit", "rbac"),
        ("auth", "mfa"),
        ("projects", "tasks"),
        ("tasks", "comments"),
        ("tenants", "accounts"),
        ("tenants", "auth"),
        ("tenants", "projects"),
        ("tenants", "tasks"),
        ("tenants", "users"),
        ("users", "auth"),
        ("users", "tasks"),
    }
)


@dataclass(frozen=True, order=True)
class Import:
    path: str
    line: int
    module: str


@dataclass(frozen=True, order=True)
class Naming:
    path: str
    line: int
    table: str


def app_sources() -> dict[str, str]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(APP.rglob("*.py"))
    }


def package_of(path: str) -> list[str]:
    parts = path.removesuffix(".py").split("/")
    return parts[:-1]


def domain_of_path(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "app" and parts[1] in ORDER else None


def domain_of_module(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "app" and parts[1] in ORDER else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(path: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        package = package_of(path)
        base = package[: len(package) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    yield module
    # `from app.tasks import queries` imports a module too.
    yield from (f"{module}.{alias.name}" for alias in node.names)


def imports(path: str, source: str) -> list[Import]:
    """Every import of the module, at any depth, except those under `if TYPE_CHECKING:`."""
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.orelse:
                    visit_one(statement)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend(Import(path, node.lineno, m) for m in _imported(path, node))
        visit(node)

    visit(ast.parse(source, path))
    return found


def domain_edges(sources: Sources) -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = {}
    for path, source in sources.items():
        origin = domain_of_path(path)
        if origin is None:
            continue
        for found in imports(path, source):
            target = domain_of_module(found.module)
            if target is not None and target != origin:
                edges.setdefault((origin, target), []).append(found)
    return edges


def foreign_queries_imports(sources: Sources) -> list[Import]:
    """Imports of another domain's `queries` module (or of anything from it)."""
    wrong = []
    for path, source in sources.items():
        origin = domain_of_path(path)
        for found in imports(path, source):
            parts = found.module.split(".")
            target = domain_of_module(found.module)
            if target not in (None, origin) and len(parts) > 2 and parts[2] == "queries":
                wrong.append(found)
    return sorted(set(wrong))


def cycle(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for origin, target in edges:
        graph.setdefault(origin, set()).add(target)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return None


def upward(edges: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges from a domain to one at or above it in ORDER."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return {(a, b) for a, b in edges if rank[b] >= rank[a]}


# SQL as it appears in the code: a keyword that starts a statement, then the tables named
# after FROM, JOIN, INTO, UPDATE or TABLE. Catalog names (pg_class, app.…) are not tables.
_STATEMENT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WITH|TRUNCATE)\b", re.IGNORECASE)
_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:ONLY\s+)?(\w+)\b", re.IGNORECASE)


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # An f-string's literal parts, joined, so a statement split around a placeholder
            # still reads as one.
            text = " ".join(
                part.value
                for part in node.values
                if isinstance(part, ast.Constant) and isinstance(part.value, str)
            )
            yield node.lineno, text
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def tables_named(path: str, source: str, tables: Iterable[str]) -> list[Naming]:
    """Tables named in SQL strings, and tables mapped with `Table("name", …)`."""
    known = set(tables)
    tree = ast.parse(source, path)
    found: list[Naming] = []
    for line, text in _strings(tree):
        if _STATEMENT.search(text):
            for match in _TABLE.finditer(text):
                if match.group(1).lower() in known:
                    found.append(Naming(path, line, match.group(1).lower()))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Table"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in known
        ):
            found.append(Naming(path, node.lineno, str(node.args[0].value)))
    return found


def foreign_tables(sources: Sources, owners: Mapping[str, str]) -> list[Naming]:
    """Tables named outside their owner: SQL outside `app/<owner>/queries.py`, a `Table`
    mapping outside `app/<owner>/models.py`."""
    wrong = []
    for path, source in sources.items():
        for naming in tables_named(path, source, owners):
            owner = owners[naming.table]
            if path not in (f"app/{owner}/queries.py", f"app/{owner}/models.py"):
                wrong.append(naming)
            elif path.endswith("models.py") and naming.line in _sql_lines(path, source, owners):
                # SQL text in models.py is still SQL outside queries.py.
                wrong.append(naming)
    return sorted(set(wrong))


def _sql_lines(path: str, source: str, tables: Iterable[str]) -> set[int]:
    tree = ast.parse(source, path)
    known = set(tables)
    return {
        line
        for line, text in _strings(tree)
        if _STATEMENT.search(text)
        and any(m.group(1).lower() in known for m in _TABLE.finditer(text))
    }


def migration_tables() -> set[str]:
    create = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
    return {
        name.lower()
        for path in MIGRATIONS.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
        for name in create.findall(path.read_text(encoding="utf-8"))
    }


# --- The rules on the application ---------------------------------------------------------


def test_scan_sees_the_domains() -> None:
    sources = app_sources()
    assert {domain_of_path(p) for p in sources} >= set(ORDER)
    # Every package of app/ other than the layers below the domains is a domain in ORDER.
    packages = {p.name for p in APP.iterdir() if (p / "__init__.py").exists()}
    assert packages - {"api", "core", "cli"} == set(ORDER)


def test_every_table_has_one_owning_domain() -> None:
    assert set(OWNERS) == migration_tables()
    assert set(OWNERS.values()) <= set(ORDER)


def test_no_domain_imports_another_domains_queries() -> None:
    wrong = foreign_queries_imports(app_sources())
    found = {(w.path, w.module) for w in wrong}
    assert [w for w in wrong if (w.path, w.module) not in KNOWN_QUERIES_IMPORTS] == []
    assert KNOWN_QUERIES_IMPORTS - found == set()


def test_only_the_owner_names_its_tables_in_sql() -> None:
    wrong = foreign_tables(app_sources(), OWNERS)
    found = {(w.path, w.table) for w in wrong}
    assert [w for w in wrong if (w.path, w.table) not in KNOWN_FOREIGN_SQL] == []
    assert KNOWN_FOREIGN_SQL - found == set()


def test_the_domain_graph_has_no_cycle_and_follows_the_order() -> None:
    edges = domain_edges(app_sources())
    going_up = upward(edges)
    assert going_up - KNOWN_UPWARD == set(), {e: edges[e][:3] for e in going_up - KNOWN_UPWARD}
    # The known list only shrinks.
    assert KNOWN_UPWARD - going_up == set()
    if not KNOWN_UPWARD:
        assert cycle(edges) is None


def test_docs_give_the_domain_order() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert " → ".join(f"`{name}`" for name in ORDER) in text


# --- The rules fed synthetic violations -------------------------------------------------------

TASKS_SERVICE = "app/tasks/service.py"
USERS_QUERIES = "app/users/queries.py"


def test_an_import_of_another_domains_queries_is_found() -> None:
    sources = {
        TASKS_SERVICE: "from app.users import queries\n",
        "app/comments/service.py": "def f():\n    from app.users.queries import insert\n",
        "app/projects/service.py": "import app.users.queries as q\n",
        # A domain's own queries, and the service of another, are fine.
        USERS_QUERIES: "from app.users import models\n",
        "app/users/service.py": "from . import queries\nfrom app.tenants import service\n",
    }
    wrong = foreign_queries_imports(sources)
    assert {w.path for w in wrong} == {
        TASKS_SERVICE,
        "app/comments/service.py",
        "app/projects/service.py",
    }


def test_sql_on_a_table_of_another_domain_is_found() -> None:
    sources = {
        "app/rbac/queries.py": (
            'Q = "SELECT r.key FROM user_roles ur JOIN users u ON u.id = ur.user_id"\n'
        ),
        "app/accounts/queries.py": (
            'async def f(s, cols):\n    await s.execute(f"UPDATE users SET {cols} WHERE id = $1")\n'
        ),
        "app/tasks/models.py": 'TASKS = Table("tasks", Task)\nUSERS = Table("users", User)\n',
        "app/users/service.py": 'X = "DELETE FROM users WHERE id = $1"\n',
        # The owner's queries and mapping, and prose that merely mentions a table, are fine.
        USERS_QUERIES: 'Q = "INSERT INTO users (email) VALUES ($1)"\n',
        "app/users/models.py": 'USERS = Table("users", User)\nDOC = "users of a tenant"\n',
    }
    wrong = foreign_tables(sources, OWNERS)
    assert [(w.path, w.table) for w in wrong] == [
        ("app/accounts/queries.py", "users"),
        ("app/rbac/queries.py", "users"),
        ("app/tasks/models.py", "users"),
        ("app/users/service.py", "users"),
    ]


def test_a_cycle_between_domains_is_found() -> None:
    sources = {
        TASKS_SERVICE: "from app.users.service import get_user\n",
        "app/users/types.py": "def f():\n    from app.tasks.types import TASK_LISTING\n",
        # Lazy references and type-checking imports are not edges.
        "app/projects/types.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from app.comments.types import Comment\n"
            'T = strawberry.lazy("app.comments.types")\n'
        ),
    }
    edges = domain_edges(sources)
    assert set(edges) == {("tasks", "users"), ("users", "tasks")}
    found = cycle(edges)
    assert found is not None
    assert set(found) == {"tasks", "users"}
    assert upward(edges) == {("users", "tasks")}
    assert cycle([("tasks", "users"), ("users", "tenants")]) is None
