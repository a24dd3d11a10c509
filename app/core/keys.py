"""The JSON Web Key set that signs Tenantry's tokens: creation, rotation and live reloading.

Private keys live in a file outside the database (mode 0600): generated in the data
directory for the embedded default, provided by the operator in production
(TENANTRY_SIGNING_KEYS_FILE, or a secret mounted as a file). The last key of the set
signs; every key in it verifies. `tenantry keys rotate` appends a key, `tenantry keys
retire KID` removes an old one; running servers notice the changed file through their
`KeyRing` without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.core.settings import SettingsError

ALGORITHM = "ES256"
# How often a running server looks at the key file (one stat) for a rotation.
RELOAD_CHECK_SECONDS = 2.0

logger = logging.getLogger("tenantry.keys")


class KeyFileError(SettingsError):
    """The key file cannot be used or changed as asked (shown to the operator as one line)."""


def generate_signing_key() -> ECKey:
    now = int(time.time())
    kid = time.strftime("%Y%m%d", time.gmtime(now)) + "-" + secrets.token_hex(4)
    # `iat` (not a registered JWK member, which RFC 7517 allows) is when the key was made.
    parameters: Any = {"kid": kid, "use": "sig", "alg": ALGORITHM, "iat": now}
    return ECKey.generate_key("P-256", parameters=parameters, private=True)


def read_keys(path: Path) -> KeySet:
    """The private JWK set in `path`; KeyFileError if it is not a usable signing key set."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = KeySet.import_key_set(data)
    except FileNotFoundError:
        raise FileNotFoundError(f"signing keys file {path} does not exist") from None
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise KeyFileError(f"signing keys file {path} is not a JSON Web Key set: {exc}") from None
    if not keys.keys:
        raise KeyFileError(f"signing keys file {path} holds no keys")
    kids = [key.kid for key in keys.keys]
    if any(not kid for kid in kids) or len(set(kids)) != len(kids):
        raise KeyFileError(f"every key in {path} needs a distinct kid")
    for key in keys.keys:
        if not isinstance(key, ECKey) or not key.is_private or key.get("crv") != "P-256":
            raise KeyFileError(f"key {key.kid} in {path} is not a private P-256 (ES256) key")
    return keys


def write_keys(path: Path, keys: KeySet) -> None:
    """Replace the file atomically: readers see the old set or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(keys.as_dict(private=True), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise rotate/retire on one file, so two operators cannot lose each other's change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_or_create_keys(path: Path, *, create: bool) -> KeySet:
    """Read the private JWK set; create one (mode 0600) when allowed and missing."""
    if path.exists():
        return read_keys(path)
    if not create:
        raise FileNotFoundError(f"signing keys file {path} does not exist")
    with _locked(path):
        if path.exists():  # another process created it meanwhile
            return read_keys(path)
        keys = KeySet([generate_signing_key()])
        write_keys(path, keys)
    return keys


def rotate_keys(path: Path) -> ECKey:
    """Append a new key, which becomes the signing key; a missing file is created."""
    with _locked(path):
        existing = read_keys(path).keys if path.exists() else []
        key = generate_signing_key()
        write_keys(path, KeySet([*existing, key]))
    return key


def retire_key(path: Path, kid: str) -> None:
    """Remove a key that no longer signs: tokens it signed stop verifying."""
    with _locked(path):
        keys = read_keys(path).keys
        if kid not in {key.kid for key in keys}:
            raise KeyFileError(f"no key with kid {kid!r} in {path}")
        if keys[-1].kid == kid:
            raise KeyFileError(
                f"key {kid} is the current signing key: run `tenantry keys rotate` first"
            )
        write_keys(path, KeySet([key for key in keys if key.kid != kid]))


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created: int | None
    current: bool


def describe_keys(keys: KeySet) -> list[KeyInfo]:
    last = len(keys.keys) - 1
    return [KeyInfo(str(key.kid), _created(key), i == last) for i, key in enumerate(keys.keys)]


def _created(key: Any) -> int | None:
    value = key.get("iat")
    return value if isinstance(value, int) else None


_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp:
    # stat() follows symlinks: a Kubernetes secret update swaps the `..data` link, which
    # changes the target's inode even when size and mtime happen to match.
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class KeyRing:
    """The signing keys of a running server: the file's current set, reloaded on change.

    Looks at the file (one stat) at most every `check_interval` seconds and re-reads it
    when its mtime, size or inode changed. A file that has become unreadable or invalid
    is logged and ignored: the server keeps signing with the keys it has.
    """

    def __init__(
        self,
        path: Path | None,
        keys: KeySet,
        *,
        check_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not keys.keys:
            raise ValueError("the signing key set is empty")
        self.path = path
        self._keys = keys
        # Unknown until the first check, which then re-reads the file once: the keys may
        # have been read before a replacement this stat would see.
        self._stamp: _Stamp | None = None
        self._interval = RELOAD_CHECK_SECONDS if check_interval is None else check_interval
        self._clock = clock
        self._checked_at = clock()

    @classmethod
    def from_file(
        cls, path: Path, *, create: bool = False, check_interval: float | None = None
    ) -> KeyRing:
        """The ring of `path`; with `create`, a missing file is generated (development)."""
        load_or_create_keys(path, create=create)
        # Stat before reading: a replacement in between is then seen by the next check.
        stamp = _stamp(path)
        ring = cls(path, read_keys(path), check_interval=check_interval)
        ring._stamp = stamp
        return ring

    @classmethod
    def fixed(cls, keys: KeySet) -> KeyRing:
        """A ring that never reloads (tests and tools that hold the keys in memory)."""
        return cls(None, keys)

    @property
    def key_set(self) -> KeySet:
        """Every key that verifies; the last one signs."""
        self._maybe_reload()
        return self._keys

    @property
    def signing_key(self) -> ECKey:
        key = self.key_set.keys[-1]
        assert isinstance(key, ECKey)
        return key

    def _maybe_reload(self) -> None:
        if self.path is None:
            return
        now = self._clock()
        if now - self._checked_at < self._interval:
            return
        self._checked_at = now
        try:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            keys = read_keys(self.path)
        except (OSError, KeyFileError) as exc:
            logger.warning("keeping the loaded signing keys: %s", exc)
            return
        changed = [k.kid for k in keys.keys] != [k.kid for k in self._keys.keys]
        self._keys, self._stamp = keys, stamp
        if changed:
            logger.info(
                "signing keys reloaded from %s: %s (signing with %s)",
                self.path,
                ", ".join(str(k.kid) for k in keys.keys),
                keys.keys[-1].kid,
            )
