"""GetAuthorizationToken: the `AWS:<token>` pair that `docker login` sends as Basic auth."""

from __future__ import annotations

import base64
from typing import Any

from ecrd.aws.calls import Call


async def get_authorization_token(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    # registryIds is deprecated in ECR: one token serves every registry of the account, but
    # each id still gets its entry with that registry's endpoint.
    account_ids = params.get("registryIds") or [call.account_id]
    data = []
    for account_id in dict.fromkeys(account_ids):
        # The token carries the caller, not the registry: each pull and push it makes is
        # authorized as that caller against the registry it addresses.
        token, expires_at = await call.services.tokens.issue(
            call.account_id,
            call.principal.user_name,
            call.region,
            user_id=call.principal.user_id,
        )
        data.append(
            {
                "authorizationToken": base64.b64encode(f"AWS:{token}".encode()).decode(),
                "expiresAt": expires_at,
                "proxyEndpoint": call.services.hosts.url_of(account_id, call.region),
            }
        )
    return {"authorizationData": data}
