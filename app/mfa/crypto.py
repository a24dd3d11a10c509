"""The cryptography of MFA, free of database and GraphQL: the key file, AES-GCM sealing of
TOTP secrets, TOTP step matching and recovery codes.

TOTP secrets must be readable by the server (to compute codes), so they are encrypted, not
hashed: AES-256-GCM with keys from a file outside the database, a key version stored next to
each ciphertext (rotation adds a key and moves `current`), and associated data naming the
tenant and the user, so a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.settings import SettingsError

ISSUER = "Tenantry"
TOTP_DIGITS = 6
TOTP_INTERVAL_SECONDS = 30
# Steps accepted around the current one: clocks drift and people type slowly.
TOTP_WINDOW = 1
# 160 bits, the size RFC 4226 recommends (32 base32 characters).
TOTP_SECRET_BYTES = 20
_KEY_BYTES = 32
_NONCE_BYTES = 12

RECOVERY_CODE_COUNT = 10
# 3 groups of 4 base32 characters: 60 bits each code.
_RECOVERY_GROUPS = 3
_RECOVERY_GROUP_LENGTH = 4
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_RECOVERY_CODE = re.compile(r"^[a-z2-7]{12}$")
_TOTP_CODE = re.compile(r"^[0-9]{6}$")


class MfaKeyError(SettingsError):
    """The MFA key file is missing, malformed, or lacks the key a ciphertext names (a
    configuration error: `tenantry serve` reports it as one line)."""


class SecretDecryptionError(ValueError):
    """A ciphertext does not open with its key and associated data (tampered or moved)."""


@dataclass(frozen=True)
class MfaKeys:
    """AES-256 keys by version; new secrets are sealed with `current`."""

    current: int
    keys: dict[int, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise MfaKeyError(f"the current MFA key version {self.current} is not in the file")
        for version, key in self.keys.items():
            if version < 1 or len(key) != _KEY_BYTES:
                raise MfaKeyError(f"MFA key {version} must be a positive version of 32 bytes")

    @classmethod
    def generate(cls) -> MfaKeys:
        return cls(current=1, keys={1: AESGCM.generate_key(bit_length=256)})

    def to_json(self) -> str:
        return json.dumps(
            {
                "current": self.current,
                "keys": {str(v): base64.b64encode(k).decode() for v, k in self.keys.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> MfaKeys:
        try:
            data = json.loads(text)
            keys = {
                int(version): base64.b64decode(value, validate=True)
                for version, value in data["keys"].items()
            }
            return cls(current=int(data["current"]), keys=keys)
        except MfaKeyError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            raise MfaKeyError("the MFA key file is not valid") from None


def load_or_create_mfa_keys(path: Path, *, create: bool) -> MfaKeys:
    """Read the MFA key file; create one (mode 0600) when allowed and missing."""
    if path.exists():
        return MfaKeys.from_json(path.read_text(encoding="utf-8"))
    if not create:
        raise MfaKeyError(f"MFA keys file {path} does not exist")
    keys = MfaKeys.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: use theirs, or secrets would not decrypt.
        return MfaKeys.from_json(path.read_text(encoding="utf-8"))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(keys.to_json())
    return keys


def totp_associated_data(tenant_id: UUID, user_id: UUID) -> bytes:
    return b"totp:" + tenant_id.bytes + user_id.bytes


@dataclass(frozen=True)
class SealedSecret:
    # nonce (12 bytes) followed by the AES-GCM ciphertext and tag.
    ciphertext: bytes
    key_version: int


def platform_totp_associated_data(admin_id: UUID) -> bytes:
    """A platform administrator's secret names the admin and no tenant: it never opens as
    (or in place of) a tenant user's."""
    return b"platform-totp:" + admin_id.bytes


def seal_secret(keys: MfaKeys, secret: str, associated_data: bytes) -> SealedSecret:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(keys.keys[keys.current]).encrypt(nonce, secret.encode(), associated_data)
    return SealedSecret(nonce + sealed, keys.current)


def open_secret(keys: MfaKeys, sealed: SealedSecret, associated_data: bytes) -> str:
    key = keys.keys.get(sealed.key_version)
    if key is None:
        raise MfaKeyError(f"MFA key version {sealed.key_version} is not in the key file")
    nonce, body = sealed.ciphertext[:_NONCE_BYTES], sealed.ciphertext[_NONCE_BYTES:]
    try:
        plain = AESGCM(key).decrypt(nonce, body, associated_data)
    except (InvalidTag, ValueError):
        raise SecretDecryptionError("the TOTP secret does not decrypt") from None
    return plain.decode()


def seal_totp_secret(keys: MfaKeys, secret: str, *, tenant_id: UUID, user_id: UUID) -> SealedSecret:
    return seal_secret(keys, secret, totp_associated_data(tenant_id, user_id))


def open_totp_secret(keys: MfaKeys, sealed: SealedSecret, *, tenant_id: UUID, user_id: UUID) -> str:
    return open_secret(keys, sealed, totp_associated_data(tenant_id, user_id))


def reseal_totp_secret(
    keys: MfaKeys, sealed: SealedSecret, *, user_id: UUID, from_tenant: UUID, to_tenant: UUID
) -> SealedSecret:
    """The same secret sealed (with the current key) for the same user in another tenant: a
    tenant imported under a new id keeps its users' authenticators. Raises as `open_secret`
    does when the ciphertext does not open for `from_tenant`."""
    secret = open_totp_secret(keys, sealed, tenant_id=from_tenant, user_id=user_id)
    return seal_totp_secret(keys, secret, tenant_id=to_tenant, user_id=user_id)


def new_totp_secret() -> str:
    """A random base32 secret, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(TOTP_SECRET_BYTES)).decode()


def provisioning_uri(secret: str, *, account: str) -> str:
    """The otpauth:// URI an authenticator app scans (as a QR code) or imports."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_INTERVAL_SECONDS)


def code_at_step(secret: str, step: int) -> str:
    return _totp(secret).generate_otp(step)


def matching_step(
    secret: str, code: str, *, last_used_step: int | None, now: float | None = None
) -> int | None:
    """The step `code` belongs to, within one step of now and after `last_used_step`.

    None for a malformed code, a code of no step in the window, and a replay (a code of
    `last_used_step` or earlier). Every step of the window is compared in constant time.
    """
    digits = normalize_totp_code(code)
    if digits is None:
        return None
    step = current_step(now)
    found = None
    for candidate in range(step - TOTP_WINDOW, step + TOTP_WINDOW + 1):
        if hmac.compare_digest(code_at_step(secret, candidate), digits) and (
            last_used_step is None or candidate > last_used_step
        ):
            found = candidate
    return found


def normalize_totp_code(code: str) -> str | None:
    """Six digits, spaces allowed anywhere ("123 456"); None for anything else."""
    if len(code) > 20:
        return None
    code = code.replace(" ", "")
    return code if _TOTP_CODE.match(code) else None


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS)


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Codes like `k3vq-7mzp-a2xd`: shown once, stored only as digests."""
    codes: set[str] = set()
    while len(codes) < count:
        raw = "".join(
            secrets.choice(_BASE32) for _ in range(_RECOVERY_GROUPS * _RECOVERY_GROUP_LENGTH)
        )
        codes.add(
            "-".join(
                raw[i : i + _RECOVERY_GROUP_LENGTH]
                for i in range(0, len(raw), _RECOVERY_GROUP_LENGTH)
            )
        )
    return sorted(codes)


def normalize_recovery_code(code: str) -> str | None:
    """Case, spaces and hyphens do not matter; None when it cannot be a recovery code."""
    if len(code) > 40:
        return None
    plain = code.strip().lower().replace("-", "").replace(" ", "")
    return plain if _RECOVERY_CODE.match(plain) else None


def recovery_code_digest(code: str, *, tenant_id: UUID, user_id: UUID) -> bytes | None:
    """SHA-256 of the normalised code, salted with tenant and user; None when malformed.

    Each code has 60 random bits and is single use behind an attempt throttle, so a slow hash
    would add little; the salt keeps a leaked table from being attacked for all users at once.
    """
    plain = normalize_recovery_code(code)
    if plain is None:
        return None
    return hashlib.sha256(b"recovery:" + tenant_id.bytes + user_id.bytes + plain.encode()).digest()
