"""ListSecrets: filtered, sorted and paged in the database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.aws.secretsmanager.secrets import secret_output
from ecrd.errors import ParameterInvalid
from ecrd.metadata.secrets import Listing, SecretFilter, sort_key, sort_value

DEFAULT_PAGE_SIZE = 100
INVALID_TOKEN = "The NextToken value is invalid."


def _listing(params: dict[str, Any]) -> Listing:
    filters = []
    for given in params.get("Filters", []):
        if "Key" not in given or not given.get("Values"):
            raise ParameterInvalid("A filter needs a Key and at least one of its Values.")
        filters.append(SecretFilter(given["Key"], tuple(given["Values"])))
    return Listing(
        filters=tuple(filters),
        include_deleted=params.get("IncludePlannedDeletion", False),
        sort_by=params.get("SortBy", "created-date"),
        descending=params.get("SortOrder", "asc") == "desc",
    )


async def list_secrets(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    listing = _listing(params)
    limit = params.get("MaxResults", DEFAULT_PAGE_SIZE)
    # A token continues only the listing it came from (same filters, order and account); the
    # filters go in as a digest, so a token stays short (NextToken: 4096 characters at most).
    described = json.dumps(
        [[[f.key, list(f.values)] for f in listing.filters], listing.include_deleted]
    )
    digest = hashlib.sha256(described.encode()).hexdigest()[:32]
    order = f"{listing.sort_by}:{'desc' if listing.descending else 'asc'}"
    scope = f"ListSecrets:{call.account_id}:{call.region}:{order}:{digest}"
    after = None
    try:
        key = decode_token(scope, params.get("NextToken"), (str, int))
        if key is not None:
            after = (sort_value(listing, key[0]), key[1])
    except (ParameterInvalid, ValueError):
        raise AwsError("InvalidNextTokenException", INVALID_TOKEN) from None
    found = await call.services.secrets.page(
        call.account_id, call.region, listing, after, limit + 1
    )
    output: dict[str, Any] = {
        "SecretList": [
            secret_output(details, "SecretVersionsToStages") for details in found[:limit]
        ]
    }
    if len(found) > limit:
        output["NextToken"] = encode_token(scope, list(sort_key(listing, found[limit - 1])))
    return output
