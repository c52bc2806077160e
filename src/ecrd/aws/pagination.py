"""Opaque, keyset-based nextToken values: the last key a page returned, bound to the
operation and the request's subject so a token cannot be replayed elsewhere."""

from __future__ import annotations

import base64
import json
from typing import Any

from ecrd.bounded_parsing import parse_json
from ecrd.errors import ParameterInvalid

KeyShape = type | tuple[type, ...]


def encode_token(scope: str, key: Any) -> str:
    raw = json.dumps([scope, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(scope: str, token: str | None, key_shape: KeyShape) -> Any:
    """The key inside `token`, or None when there is no token; ParameterInvalid if forged.

    `key_shape` is the type the key must have (`str`, `int`), or a tuple of types for a key
    that is a list (`(int, str)`): a token is only base64 JSON, so a client can write any key
    with the right scope, and a key of the wrong shape must not reach a query.
    """
    if token is None:
        return None
    try:
        token_scope, key = parse_json(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):  # InputInvalid, bad base64, or not a [scope, key] pair
        raise ParameterInvalid("Invalid parameter at 'nextToken': the token is not valid") from None
    if token_scope != scope:
        raise ParameterInvalid(
            "Invalid parameter at 'nextToken': the token is not for this request"
        )
    if not _has_shape(key, key_shape):
        raise ParameterInvalid("Invalid parameter at 'nextToken': the token is not valid")
    return key


def _has_shape(key: Any, key_shape: KeyShape) -> bool:
    if isinstance(key_shape, tuple):
        return (
            isinstance(key, list)
            and len(key) == len(key_shape)
            and all(_has_shape(part, shape) for part, shape in zip(key, key_shape, strict=True))
        )
    # JSON true/false are ints to Python; a key is never one. A string key never holds a
    # control character (PostgreSQL refuses NUL in text: that would be a 500, not a 400).
    if isinstance(key, str) and any(ord(character) < 32 for character in key):
        return False
    return isinstance(key, key_shape) and not isinstance(key, bool)
