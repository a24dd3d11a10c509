"""Which document an operation runs: the one sent, one registered by its hash (Apollo's
automatic persisted queries), or, in trusted-documents mode, only those of a manifest.

- **Automatic persisted queries** (Apollo's protocol, on by default): a request may carry
  `extensions.persistedQuery = {version: 1, sha256Hash}` instead of `query`. A known hash
  runs its document; an unknown one is answered `PersistedQueryNotFound`
  (PERSISTED_QUERY_NOT_FOUND), and the client sends the hash again with the document, which
  is checked against the hash (PERSISTED_QUERY_HASH_MISMATCH otherwise), run, and kept once
  it proved a valid document (app/core/document_cache.py: per tenant, bounded in number,
  size and time, shared by every process through Redis). With APQ off, a hash is answered
  `PersistedQueryNotSupported`, and Apollo's link stops sending hashes.
- **Trusted documents** (`TENANTRY_TRUSTED_DOCUMENTS` names a manifest): only the manifest's
  documents run. A client sends the id (`documentId`, or Apollo's `sha256Hash`), or a full
  document whose text is registered; anything else is PERSISTED_QUERY_NOT_IN_LIST, and
  nothing is ever registered at run time. Manifests: a JSON object of id → document (GraphQL
  Code Generator's client preset `persisted-documents.json`, Relay's
  `persisted_queries.json`), or Apollo's persisted query manifest
  (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body", …}]}`).

The messages of the two APQ errors are Apollo's own words: Apollo Client 3 matches on them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from graphql import GraphQLError, parse
from strawberry.schema import BaseSchema

from app.api.transport import OperationRequest, RequestError
from app.core.document_cache import DocumentCache, sha256_hex
from app.core.settings import SettingsError, TransportSettings
from app.core.store import Store, StoreKey, platform_key, tenant_key


class DocumentRefused(Exception):
    """An operation whose document cannot be had or may not run: a request error of its own
    code (the client's persisted-query link acts on it). Never a mutation's payload error."""

    code: str = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PersistedQueryNotFound(DocumentRefused):
    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class PersistedQueryNotSupported(DocumentRefused):
    code = "PERSISTED_QUERY_NOT_SUPPORTED"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotSupported")


class PersistedQueryHashMismatch(DocumentRefused):
    code = "PERSISTED_QUERY_HASH_MISMATCH"

    def __init__(self) -> None:
        super().__init__("The document's SHA-256 is not the `sha256Hash` sent with it")


class NotInList(DocumentRefused):
    code = "PERSISTED_QUERY_NOT_IN_LIST"

    def __init__(self) -> None:
        super().__init__(
            "This server runs only registered operations (trusted documents), and this one"
            " is not registered"
        )


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TrustedDocuments:
    """A manifest's documents by id, and the set of their texts."""

    by_id: dict[str, str]
    texts: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        """The manifest at `path`; a SettingsError names what is wrong with it."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SettingsError(
                f"TENANTRY_TRUSTED_DOCUMENTS: cannot read {path}: {error}"
            ) from None
        entries = _entries(raw)
        if entries is None:
            raise SettingsError(
                f"TENANTRY_TRUSTED_DOCUMENTS: {path} is neither a JSON object of id -> document"
                " nor an Apollo persisted query manifest"
            )
        for key, document in entries.items():
            try:
                parse(document)
            except GraphQLError as error:
                raise SettingsError(
                    f"TENANTRY_TRUSTED_DOCUMENTS: document {key!r} does not parse: {error.message}"
                ) from None
        return cls(entries, frozenset(entries.values()))

    def find(self, document_id: str) -> str | None:
        """The document of an id as clients send it: as listed, or a SHA-256 with or
        without the `sha256:` prefix of GraphQL over HTTP's persisted documents."""
        for candidate in (
            document_id,
            document_id.removeprefix("sha256:"),
            f"sha256:{document_id}",
        ):
            found = self.by_id.get(candidate)
            if found is not None:
                return found
        return None


def _entries(raw: Any) -> dict[str, str] | None:
    if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
        operations = raw.get("operations")
        if not isinstance(operations, list):
            return None
        pairs = [(o.get("id"), o.get("body")) for o in operations if isinstance(o, dict)]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        return None
    entries = {k: v for k, v in pairs if isinstance(k, str) and isinstance(v, str)}
    return entries if pairs and len(entries) == len(pairs) else None


def owner_of(state: Any) -> StoreKey:
    """Whose registered documents a request sees: its tenant's, the platform's, or the
    anonymous callers'. Kept apart, so no caller can learn which documents another tenant's
    clients send by probing their hashes."""
    principal = getattr(state, "principal", None)
    tenant_id: UUID | None = getattr(principal, "tenant_id", None)
    if tenant_id is not None:
        return tenant_key(tenant_id, "apq")
    if getattr(state, "platform_principal", None) is not None:
        return platform_key("apq", "platform")
    return platform_key("apq", "anonymous")


class Documents:
    """Resolves each operation's document (see the module); built once at start-up."""

    def __init__(
        self,
        *,
        cache: DocumentCache | None,
        trusted: TrustedDocuments | None,
        deployment: str,
    ) -> None:
        self.cache = None if trusted is not None else cache
        self.trusted = trusted
        # Documents registered by another deployment (another schema) are not looked up.
        self.deployment = deployment

    def _owner(self, owner: StoreKey) -> StoreKey:
        return StoreKey(f"{owner.value}:{self.deployment}")

    async def document(self, request: OperationRequest, owner: StoreKey) -> str:
        """The text the operation runs; raises a `DocumentRefused` (see the module)."""
        digest = _hash_of(request.persisted_query)
        if self.trusted is not None:
            return self._trusted(request, digest)
        if digest is not None and self.cache is None:
            raise PersistedQueryNotSupported
        if request.document_id is not None and request.query is None:
            # Documents by id are the trusted mode's: this server keeps none.
            raise PersistedQueryNotSupported
        if digest is None:
            assert request.query is not None
            return request.query
        if request.query is not None:
            if sha256_hex(request.query) != digest:
                raise PersistedQueryHashMismatch
            return request.query
        assert self.cache is not None
        found = await self.cache.get(self._owner(owner), digest)
        if found is None:
            raise PersistedQueryNotFound
        return found

    async def remember(self, request: OperationRequest, document: str, owner: StoreKey) -> None:
        """Keep a document sent with its hash, once it proved valid (it was executed or
        refused only for its variables or its caller, never for its text)."""
        if self.cache is not None and request.query is not None and request.persisted_query:
            await self.cache.put(self._owner(owner), document)

    def _trusted(self, request: OperationRequest, digest: str | None) -> str:
        assert self.trusted is not None
        document_id = request.document_id or digest
        if document_id is not None:
            found = self.trusted.find(document_id)
            if found is None or (request.query is not None and request.query != found):
                raise NotInList
            return found
        if request.query is None or request.query not in self.trusted.texts:
            raise NotInList
        return request.query


def _hash_of(extension: object) -> str | None:
    """The `sha256Hash` of Apollo's `persistedQuery` extension (None: not sent)."""
    if extension is None:
        return None
    if (
        not isinstance(extension, dict)
        or extension.get("version") != 1
        or not isinstance(extension.get("sha256Hash"), str)
        or not _SHA256.match(extension["sha256Hash"])
    ):
        raise RequestError(
            422,
            "BAD_REQUEST",
            "`extensions.persistedQuery` must be {version: 1, sha256Hash: <64 lower-case hex"
            " digits>}",
        )
    digest: str = extension["sha256Hash"]
    return digest


def documents_for(settings: TransportSettings, store: Store, schema: BaseSchema) -> Documents:
    """The server's `Documents`, from its settings (the trusted manifest is read here, at
    start-up: a broken one stops the server)."""
    trusted = (
        None
        if settings.trusted_documents_file is None
        else TrustedDocuments.load(settings.trusted_documents_file)
    )
    cache = (
        DocumentCache(
            store,
            ttl_seconds=settings.apq_ttl_seconds,
            max_entries=settings.apq_max_entries,
            max_bytes=settings.apq_max_document_bytes,
        )
        if settings.apq
        else None
    )
    # The deployment is its schema: documents are registered per schema version.
    deployment = sha256_hex(schema.as_str())[:16]
    return Documents(cache=cache, trusted=trusted, deployment=deployment)
