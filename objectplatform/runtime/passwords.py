"""Passwords: hashing with scrypt from the standard library (so the runtime needs neither Flask nor werkzeug),
and the policy every password a user sets is held to."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from zxcvbn import zxcvbn

from .errors import Message

DEFAULT_N, R, P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
PREFIX = "scrypt"
COST_VARIABLE = "OBJECTPLATFORM_PASSWORD_COST"
MIN_LENGTH = 10
MIN_SCORE = 3  # zxcvbn's estimate, 0 (a top common password) to 4 (very unguessable)


def cost_from(env: Mapping[str, str]) -> int:
    """scrypt's N for new hashes: OBJECTPLATFORM_PASSWORD_COST (a power of two from 2**10 to 2**20),
    else 2**14. A hash keeps its own N, so changing it never locks anyone out; a test run lowers it so
    that creating and signing in thousands of users does not dominate the suite."""
    text = env.get(COST_VARIABLE)
    if not text:
        return DEFAULT_N
    n = int(text) if text.isdigit() else 0
    if not (2**10 <= n <= 2**20 and n & (n - 1) == 0):
        raise ValueError(f"{COST_VARIABLE} must be a power of two from 1024 to 1048576, not {text!r}")
    return n


N = cost_from(os.environ)


def _scrypt(plain: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(plain.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=HASH_BYTES)


def hash_password(plain: str) -> str:
    """A salted hash of `plain` as "scrypt$n$r$p$salt_b64$hash_b64"."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(plain, salt, N, R, P)
    encoded = (base64.b64encode(b).decode("ascii") for b in (salt, digest))
    return "$".join((PREFIX, str(N), str(R), str(P), *encoded))


def verify_password(plain: str, hashed: str) -> bool:
    """Whether `plain` matches `hashed` (compared in constant time); a malformed hash never matches."""
    parts = hashed.split("$") if isinstance(hashed, str) else []
    if len(parts) != 6 or parts[0] != PREFIX or not all(x.isdigit() for x in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        return False
    try:
        salt, digest = (base64.b64decode(x, validate=True) for x in parts[4:])
    except binascii.Error:
        return False
    return hmac.compare_digest(_scrypt(plain, salt, n, r, p), digest)


def policy_errors(plain: str, username: str | None) -> list[Message]:
    """Why a user may not set `plain` as a password: shorter than 10 characters, one character repeated, the
    username, or easy to guess (zxcvbn: common passwords, words, names, keyboard patterns and dates, scored below
    3); [] when it may be set. The system's own writes (the demo's documented users) are not held to it."""
    if len(plain) < MIN_LENGTH:
        return [Message("password.too_short", "must be at least {min} characters", min=MIN_LENGTH)]
    if len(set(plain)) == 1:
        return [Message("password.one_character", "must not be one character repeated")]
    if username and plain.strip().casefold() == username.strip().casefold():
        return [Message("password.is_username", "must not be the username")]
    if zxcvbn(plain, user_inputs=_words_of(username))["score"] < MIN_SCORE:
        return [Message("password.guessable", "is too easy to guess (a common password, word or pattern): "
                                              "choose a longer, less predictable one")]
    return []


def _words_of(username: str | None) -> list[str]:
    """The username, its parts and its parts run together: guessing starts with them ("zhang-wei" -> zhangwei)."""
    parts = [part for part in re.split(r"[\W_]+", username or "") if part]
    return [username, "".join(parts), *parts] if username else []
