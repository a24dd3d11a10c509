"""The JSON Web Key set that signs Tenantry's tokens: creation and loading.

Private keys live in a file outside the database (mode 0600): generated in the data
directory for the embedded default, provided by the operator in production.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"


def generate_signing_key() -> ECKey:
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return ECKey.generate_key(
        "P-256", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
    )


def load_or_create_keys(path: Path, *, create: bool) -> KeySet:
    """Read the private JWK set; create one (mode 0600) when allowed and missing."""
    if path.exists():
        return KeySet.import_key_set(json.loads(path.read_text(encoding="utf-8")))
    if not create:
        raise FileNotFoundError(f"signing keys file {path} does not exist")
    keys = KeySet([generate_signing_key()])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(keys.as_dict(private=True), f)
    return keys
