"""Only app/core/db.py binds a tenant to a connection; policies read it through one helper.

A second place that sets `app.tenant_id` (or any setting) could bind the wrong tenant or
leak it to the next request on a pooled connection, so the rule is checked, not trusted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
SQL = ROOT / "sql"
BINDING_MODULE = APP / "core" / "db.py"
TENANT_HELPER = SQL / "policies" / "10-functions.sql"

# What binds a setting to a connection, in any spelling.
BINDING = {
    "app.tenant_id": re.compile(r"app\.tenant_id", re.IGNORECASE),
    "set_config": re.compile(r"set_config", re.IGNORECASE),
    "SET LOCAL": re.compile(r"\bSET\s+LOCAL\b", re.IGNORECASE),
    "SET SESSION": re.compile(r"\bSET\s+SESSION\b", re.IGNORECASE),
}


def files_containing(root: Path, suffix: str, pattern: re.Pattern[str]) -> set[Path]:
    return {
        path.relative_to(ROOT)
        for path in root.rglob(f"*{suffix}")
        if pattern.search(path.read_text(encoding="utf-8"))
    }


def test_scan_sees_the_whole_app() -> None:
    scanned = list(APP.rglob("*.py"))
    assert BINDING_MODULE in scanned
    assert len(scanned) >= 10


@pytest.mark.parametrize("pattern", BINDING.values(), ids=BINDING.keys())
def test_only_db_py_binds_a_tenant(pattern: re.Pattern[str]) -> None:
    allowed = {BINDING_MODULE.relative_to(ROOT)}
    assert files_containing(APP, ".py", pattern) <= allowed


def test_db_py_binds_the_tenant_transaction_locally() -> None:
    source = BINDING_MODULE.read_text(encoding="utf-8")
    # The one binding statement: SET LOCAL (which Citus forwards to its workers), never a
    # session-level SET or set_config(..., false).
    assert re.search(r"SET LOCAL app\.tenant_id = '\{tenant\}'", source)
    assert not re.search(r"\bSET\s+(?!LOCAL\b)[\w.]+\s*(=|TO\b)", source, re.IGNORECASE)
    assert not re.search(r"set_config\([^)]*,\s*false\)", source, re.IGNORECASE)
    assert not BINDING["SET SESSION"].search(source)


def test_policies_read_the_tenant_through_one_helper() -> None:
    setting_readers = re.compile(r"current_setting|app\.tenant_id", re.IGNORECASE)
    assert files_containing(SQL, ".sql", setting_readers) == {TENANT_HELPER.relative_to(ROOT)}
