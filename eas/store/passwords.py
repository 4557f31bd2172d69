"""Password hashes of the reference store: scrypt (``cryptography``), self-describing.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the parameters can
be raised later and old hashes still verify (``needs_rehash`` says when to renew one).
"""

from __future__ import annotations

import base64
import hmac
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ALGORITHM = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds on parameters read back from the database, so a tampered row cannot make a login
# allocate gigabytes (scrypt memory is 128 * r * n bytes).
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


def hash_password(password: str) -> str:
    """A new hash of ``password`` with a random salt and the current parameters."""
    salt = os.urandom(SALT_BYTES)
    digest = _derive(password, salt, N, R, P, HASH_BYTES)
    return "$".join((ALGORITHM, str(N), str(R), str(P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant time in the comparison, and False
    (never an exception) for a malformed stored value."""
    try:
        algorithm, n_s, r_s, p_s, salt_s, digest_s = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, digest = base64.b64decode(salt_s, validate=True), base64.b64decode(digest_s, validate=True)
    except (ValueError, TypeError):
        return False
    if algorithm != ALGORITHM or not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R
                                      and 0 < p <= _MAX_P and 16 <= len(digest) <= 64):
        return False
    candidate = _derive(password, salt, n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest)


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, so that an unknown login takes as long as a
    wrong password and user names cannot be told apart by timing."""
    _derive(password, b"\0" * SALT_BYTES, N, R, P, HASH_BYTES)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` uses other parameters than the current ones."""
    return not stored.startswith(f"{ALGORITHM}${N}${R}${P}$")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    secret = password.encode("utf-8", "surrogatepass")
    return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(secret)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
