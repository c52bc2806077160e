"""Registry tokens: what a checked token remembers must never outlive what made it valid."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from ecrd.auth.tokens import TokenIssuer
from ecrd.metadata.records import utcnow
from ecrd.metadata.signing_keys import SigningKey

ACCOUNT = "123456789012"


def test_a_token_read_again_gives_the_same_claims_and_a_changed_one_none() -> None:
    async def scenario() -> None:
        issuer = TokenIssuer.with_secret(b"\x07" * 32)
        token, expires_at = await issuer.issue(ACCOUNT, "ci", "eu-west-1", user_id=4)
        first = await issuer.read(token)
        again = await issuer.read(token)
        assert first is not None and again == first
        assert (first.account_id, first.user_name, first.user_id) == (ACCOUNT, "ci", 4)
        assert first.expires_at == expires_at.replace(microsecond=0)
        # The first character of the signature changed (six bits of it, none padding), after
        # the real token was read: refused
        at = token.index(".") + 1
        forged = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        assert await issuer.read(forged) is None

    asyncio.run(scenario())


def test_a_token_read_before_is_refused_once_its_key_no_longer_verifies() -> None:
    async def scenario() -> None:
        # A key whose time to verify ends in a moment (a rotated-out key)
        key = SigningKey(1, b"\x09" * 32, utcnow(), utcnow() + timedelta(seconds=0.3))
        issuer = TokenIssuer(keys=[key])
        token, _ = await issuer.issue(ACCOUNT, None, "eu-west-1")
        assert await issuer.read(token) is not None
        deadline = time.monotonic() + 5
        while key.verifies_at(utcnow()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Then the token, remembered as checked, is refused all the same
        assert await issuer.read(token) is None

    asyncio.run(scenario())
