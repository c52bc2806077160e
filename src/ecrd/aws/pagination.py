"""Opaque, keyset-based nextToken values: the last key a page returned, bound to the
operation and the request's subject so a token cannot be replayed elsewhere."""

from __future__ import annotations

import base64
import json
from typing import Any

from ecrd.errors import ParameterInvalid


def encode_token(scope: str, key: Any) -> str:
    raw = json.dumps([scope, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(scope: str, token: str | None) -> Any:
    """The key inside `token`, or None when there is no token; ParameterInvalid if forged."""
    if token is None:
        return None
    try:
        token_scope, key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ParameterInvalid("Invalid parameter at 'nextToken': the token is not valid") from None
    if token_scope != scope:
        raise ParameterInvalid(
            "Invalid parameter at 'nextToken': the token is not for this request"
        )
    return key
