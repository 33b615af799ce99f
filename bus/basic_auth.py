"""The basic-auth check the gateway and the provider share (REFERENCE.md sections 1 and 10).

Both protect ``/system/*`` with the same credentials and must refuse the same way: no header, a
``Bearer`` token (faas-cli sends an empty one when not logged in), malformed base64, or wrong
credentials. They cannot import each other, so the check lives in the layer both sit on.
"""

from __future__ import annotations

import base64
import binascii
import hmac

__all__ = ["basic_auth_matches"]


def basic_auth_matches(authorization: str | None, user: bytes, password: bytes) -> bool:
    """True when ``authorization`` is ``Basic <base64 user:password>`` for these credentials."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, colon, given_password = decoded.partition(b":")
    if not colon:
        return False
    # Both comparisons always run, so timing does not tell which part was wrong.
    user_ok = hmac.compare_digest(given_user, user)
    password_ok = hmac.compare_digest(given_password, password)
    return user_ok and password_ok
