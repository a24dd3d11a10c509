"""The installable package carries its migrations and policies.

`tenantry migrate` reads them next to the code; a wheel (what the container image installs)
without them would apply nothing and re-apply no policy, and say so only as "no pending
migrations".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from app.core.migrate import MIGRATIONS_DIR, POLICIES_DIR, SQL_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_the_code_reads_the_repository_sql_files() -> None:
    assert SQL_DIR.resolve() == (ROOT / "sql").resolve()
    assert sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert sorted(p.name for p in POLICIES_DIR.glob("*.sql"))


def test_the_wheel_holds_every_migration_and_policy(tmp_path: Path) -> None:
    # Built from a copy of what the image's build stage copies: a checkout's stale build/
    # directory cannot fill in for the packaging rules.
    source = tmp_path / "source"
    for name in ("app", "sql"):
        shutil.copytree(ROOT / name, source / name, symlinks=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(  # noqa: S603 (fixed arguments)
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("tenantry-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {name for name in archive.namelist() if name.startswith("app/sql/")}

    expected = {
        f"app/sql/{path.relative_to(ROOT / 'sql')}" for path in (ROOT / "sql").rglob("*.sql")
    }
    assert len(expected) > 20
    assert packaged == expected
