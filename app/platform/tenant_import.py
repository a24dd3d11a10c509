"""`tenantry tenant import`: an export (app/platform/portability.py) restored as a new tenant.

The file is read line by line into ONE transaction bound to the new tenant's id (and in the
platform scope, for the registry row and the platform audit entry). Each line is checked
before its row is inserted: the header against this server's schema and catalog, each row's
table, columns and tenant (a row claiming another tenant than the header's refuses the file),
the trailer's counts against the rows read. Rows are inserted in batches by PostgreSQL itself
(`jsonb_populate_record`) with the new tenant id; TOTP secrets are re-sealed for it. Any
refusal rolls everything back: nothing is created, and the refusal is audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from app.audit.models import ActorKind, AuditOutcome
from app.audit.service import record
from app.core import validation
from app.core.db import Database, Session
from app.core.errors import Conflict, DomainError, Invalid
from app.core.request_meta import RequestMeta
from app.core.settings import Settings
from app.mfa import crypto
from app.mfa.service import load_keys
from app.platform import portability_queries as pq
from app.platform.portability import FORMAT, VERSION, exported_tables, schema_versions
from app.tenants import queries as tenant_queries
from app.tenants.models import Tenant
from app.tenants.plans import check_plan
from app.tenants.service import check_slug, lookup_slug

# Rows per INSERT: few round trips, small statements.
BATCH_ROWS = 500
# Columns of the tenant's registry row that an import sets instead of copying.
_TENANT_SET_BY_IMPORT = frozenset(
    {"id", "slug", "name", "status", "deleted_at", "created_at", "updated_at"}
)
_TOTP_TABLE = "public.mfa_totp"


@dataclass(frozen=True)
class Imported:
    tenant: Tenant
    source_tenant_id: UUID
    source_slug: str
    export_id: str
    rows: dict[str, int]
    # Users whose TOTP secret was re-sealed for the new tenant (they need new recovery codes).
    totp_users: int
    # Users still invited: their invitation links did not travel; invite them again.
    invited_users: int


async def import_tenant(
    database: Database,
    settings: Settings,
    meta: RequestMeta,
    *,
    lines: Iterable[bytes],
    source: str,
    slug: str,
    name: str | None,
) -> Imported:
    """Create a new tenant `slug` holding the rows of an export, in one transaction. A file
    that is not a complete, unaltered export of one tenant is refused with the reason
    (`Invalid`; a taken slug is a `Conflict`) and nothing is created; the refusal is
    recorded in the platform audit log."""
    try:
        return await _import(database, settings, meta, lines, source, slug, name)
    except DomainError as exc:
        async with database.transaction(None, platform=True) as session:
            await record(
                session,
                meta,
                action="tenant.imported",
                outcome=AuditOutcome.FAILURE,
                actor_id=None,
                actor_kind=ActorKind.SYSTEM,
                target_type="tenant",
                metadata={"slug": slug, "source": source, "reason": exc.message},
                platform=True,
            )
        raise


@dataclass(frozen=True)
class _Header:
    line: str
    export_id: str
    exported_at: str
    schema: str
    tenant: dict[str, Any]
    tenant_id: UUID
    # Table name -> the columns its rows hold, parents first.
    tables: dict[str, tuple[str, ...]]


async def _import(
    database: Database,
    settings: Settings,
    meta: RequestMeta,
    lines: Iterable[bytes],
    source: str,
    slug: str,
    name: str | None,
) -> Imported:
    slug = check_slug(slug)
    if name is not None:
        name = validation.text(name, field="name", max_length=200)
    reader = _read(lines)
    header = _header(next(reader, None))
    # The exported name as it was (the database that held it accepted it); a new one is
    # validated like any other.
    new_name = name if name is not None else header.tenant.get("name")
    if not isinstance(new_name, str):
        raise Invalid("line 1: the header's tenant has no name")
    check_plan(str(header.tenant.get("plan")))
    if await lookup_slug(database, slug) is not None:
        raise Conflict(f"The slug {slug!r} is already taken", field="slug")
    tenant_id = uuid4()
    async with database.transaction(tenant_id, platform=True) as session:
        targets = {t.name: t for t in await exported_tables(session, "INSERT")}
        [registry] = await pq.shapes(session, ["public.tenants"])
        _check_shapes(header, targets, registry)
        try:
            await pq.insert_tenant(
                session,
                tenant_id=tenant_id,
                slug=slug,
                name=new_name,
                header_line=header.line,
                columns=[c for c in header.tenant if c not in _TENANT_SET_BY_IMPORT],
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"The slug {slug!r} is already taken", field="slug") from None
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
            raise Invalid("line 1: the tenant in the header does not fit this server") from None
        loader = _Loader(session, settings, header, targets, tenant_id)
        rows = await loader.load(reader)
        tenant = await tenant_queries.current(session)
        assert tenant is not None
        invited = await pq.invited_users(session)
        details = {
            "source_tenant_id": str(header.tenant_id),
            "source_slug": header.tenant.get("slug"),
            "export_id": header.export_id,
            "exported_at": header.exported_at,
            "schema": header.schema,
            "source": source,
            "rows": rows,
        }
        for platform in (False, True):
            await record(
                session,
                meta,
                action="tenant.imported",
                actor_id=None,
                actor_kind=ActorKind.SYSTEM,
                target_type="tenant",
                target_id=tenant_id,
                metadata={**details, "slug": slug} if platform else details,
                platform=platform,
            )
    return Imported(
        tenant=tenant,
        source_tenant_id=header.tenant_id,
        source_slug=str(header.tenant.get("slug")),
        export_id=header.export_id,
        rows=rows,
        totp_users=loader.resealed,
        invited_users=invited,
    )


# -- reading the file -----------------------------------------------------------------------

_Line = tuple[int, str, dict[str, Any]]


def _read(lines: Iterable[bytes]) -> Iterator[_Line]:
    """(number, text, object) of each line; a line that is not a JSON object is refused."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            # Refused as "not a row" anywhere but after the trailer (an editor's last newline).
            yield number, "", {}
            continue
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
            value = json.loads(
                text,
                parse_float=Decimal,
                parse_constant=_no_constant,
                object_pairs_hook=_unique_keys,
            )
        except ValueError:
            raise Invalid(f"line {number} is not valid JSON (an altered or cut file)") from None
        if not isinstance(value, dict):
            raise Invalid(f"line {number} is not a JSON object")
        yield number, text, value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key repeats")
    return value


def _header(first: _Line | None) -> _Header:
    if first is None:
        raise Invalid("The file is empty")
    _, text, value = first
    if value.get("format") != FORMAT:
        raise Invalid("line 1: this is not a Tenantry export (no tenantry-export header)")
    if value.get("version") != VERSION:
        raise Invalid(
            f"line 1: export format version {value.get('version')!r} is not supported"
            f" (this server reads version {VERSION})"
        )
    schema = value.get("schema")
    known = schema_versions()
    if not isinstance(schema, str) or schema not in known:
        newer = isinstance(schema, str) and schema > known[-1]
        raise Invalid(
            f"line 1: the file was exported at schema {schema!r}, which this server does not"
            + (" have yet: upgrade it first" if newer else " know")
        )
    tenant, tables = value.get("tenant"), value.get("tables")
    malformed = Invalid("line 1: the header's tenant or tables are malformed")
    if not isinstance(tenant, dict) or not isinstance(tables, list):
        raise malformed
    tenant_id = _uuid(tenant.get("id"))
    shapes: dict[str, tuple[str, ...]] = {}
    for table in tables:
        name = table.get("name") if isinstance(table, dict) else None
        columns = table.get("columns") if isinstance(table, dict) else None
        if (
            not isinstance(name, str)
            or name in shapes
            or not isinstance(columns, list)
            or not all(isinstance(c, str) for c in columns)
            or len(set(columns)) != len(columns)
            or "tenant_id" not in columns
        ):
            raise malformed
        shapes[name] = tuple(columns)
    export_id, exported_at = value.get("export_id"), value.get("exported_at")
    if tenant_id is None or not isinstance(export_id, str) or not isinstance(exported_at, str):
        raise malformed
    return _Header(text, export_id, exported_at, schema, tenant, tenant_id, shapes)


def _check_shapes(
    header: _Header, targets: dict[str, pq.TableShape], registry: pq.TableShape
) -> None:
    """Every table and column of the file exists here (a column this server added since
    takes its default)."""
    unknown = sorted(set(header.tenant) - set(registry.columns))
    if unknown:
        raise Invalid(f"line 1: the tenant has columns this server does not know: {unknown}")
    for name, columns in header.tables.items():
        if name not in targets:
            raise Invalid(f"line 1: the file holds a table this server does not import: {name}")
        extra = sorted(set(columns) - set(targets[name].columns))
        if extra:
            raise Invalid(f"line 1: columns of {name} this server does not have: {extra}")


class _Loader:
    """Checks each row line and inserts them in batches, one table at a time."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        header: _Header,
        targets: dict[str, pq.TableShape],
        tenant_id: UUID,
    ) -> None:
        self._session = session
        self._settings = settings
        self._header = header
        self._targets = targets
        self._tenant_id = tenant_id
        self._order = {name: i for i, name in enumerate(header.tables)}
        self._keys: crypto.MfaKeys | None = None
        self._batch: list[str] = []
        self._table: str | None = None
        self._first = 0
        self.resealed = 0

    async def load(self, reader: Iterator[_Line]) -> dict[str, int]:
        counts = dict.fromkeys(self._header.tables, 0)
        for number, text, value in reader:
            if "end" in value:
                await self._flush(number)
                self._check_trailer(number, value, counts)
                for after, rest, _ in reader:
                    if rest.strip():
                        raise Invalid(f"line {after}: more data after the trailer")
                return counts
            table, row = value.get("table"), value.get("row")
            if table not in self._order or not isinstance(row, dict) or len(value) != 2:
                raise Invalid(f"line {number}: not a row of a table in the header")
            if self._table != table:
                if self._table is not None and self._order[table] <= self._order[self._table]:
                    raise Invalid(f"line {number}: rows of {table} are out of the header's order")
                await self._flush(number)
                self._table, self._first = table, number
            if set(row) != set(self._header.tables[table]):
                raise Invalid(f"line {number}: the row's columns differ from the header's")
            if _uuid(row.get("tenant_id")) != self._header.tenant_id:
                raise Invalid(
                    f"line {number}: a row of {table} claims another tenant than the"
                    " header's; the file is refused"
                )
            if table == _TOTP_TABLE:
                text = await self._reseal(number, table, row)
            self._batch.append(text)
            counts[table] += 1
            if len(self._batch) >= BATCH_ROWS:
                await self._flush(number + 1)
        raise Invalid("The file ends before its trailer: it is truncated")

    def _check_trailer(self, number: int, value: dict[str, Any], counts: dict[str, int]) -> None:
        if value.get("end") != FORMAT or value.get("export_id") != self._header.export_id:
            raise Invalid(f"line {number}: the trailer is not this export's")
        if value.get("rows") != counts:
            raise Invalid(
                f"line {number}: the trailer's row counts differ from the rows in the file"
                " (a truncated or altered file)"
            )

    async def _flush(self, next_line: int) -> None:
        if not self._batch:
            return
        assert self._table is not None
        table, lines = self._targets[self._table], self._batch
        self._batch, where = [], f"lines {self._first}-{next_line - 1}"
        self._first = next_line
        try:
            await pq.insert_rows(
                self._session, table, list(self._header.tables[table.name]), lines, self._tenant_id
            )
        except asyncpg.UniqueViolationError:
            raise Invalid(f"{where}: two rows of {table.name} have the same key") from None
        except asyncpg.ForeignKeyViolationError:
            raise Invalid(
                f"{where}: a row of {table.name} refers to a row the file does not hold"
            ) from None
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
            raise Invalid(f"{where}: a value of {table.name} does not fit the table") from None

    async def _reseal(self, number: int, table: str, row: dict[str, Any]) -> str:
        """A TOTP secret is sealed for its tenant and user: opened for the old tenant and
        sealed again for the new one, with this server's MFA keys."""
        if self._keys is None:
            self._keys = await load_keys(self._settings)
        try:
            sealed = crypto.reseal_totp_secret(
                self._keys,
                crypto.SealedSecret(
                    bytes.fromhex(str(row["secret_ciphertext"]).removeprefix("\\x")),
                    int(row["key_version"]),
                ),
                user_id=UUID(str(row["user_id"])),
                from_tenant=self._header.tenant_id,
                to_tenant=self._tenant_id,
            )
        except crypto.MfaKeyError:
            raise Invalid(
                f"line {number}: a TOTP secret was sealed with MFA key version"
                f" {row['key_version']}, which this server's key file does not hold"
            ) from None
        except crypto.SecretDecryptionError:
            raise Invalid(
                f"line {number}: a TOTP secret does not open with this server's MFA keys"
                " (another key file, or an altered file)"
            ) from None
        except (KeyError, TypeError, ValueError):
            raise Invalid(f"line {number}: a TOTP secret is malformed") from None
        self.resealed += 1
        row = {
            **row,
            "secret_ciphertext": "\\x" + sealed.ciphertext.hex(),
            "key_version": sealed.key_version,
        }
        return json.dumps({"table": table, "row": row}, default=str)


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
