"""The registry auth flows: WWW-Authenticate challenges, Basic, and Docker's Bearer tokens.

A registry that wants credentials answers 401 with a challenge (RFC 7235). `Basic realm=..`
wants the credentials on every request. `Bearer realm=..,service=..,scope=..` (the Docker
token spec, which the distribution spec refers to) wants a token: GET
`<realm>?service=<service>&scope=repository:<name>:pull`, with the credentials as Basic auth
when there are any and anonymously otherwise; the answer's `token` (or OAuth's
`access_token`) is sent as `Authorization: Bearer` until `expires_in` (60 seconds when absent)
has passed. Tokens are kept per (realm, service, scope), so each repository has its own.

Neither credentials nor tokens are ever logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.upstream.answers import failure, read_bounded, send, where
from ecrd.upstream.errors import UpstreamInvalid, UpstreamUnauthorized

logger = logging.getLogger("ecrd.upstream")

# A token without expires_in lasts 60 seconds (the Docker token spec's default).
DEFAULT_TOKEN_SECONDS = 60
# A token is renewed this long before it expires (at most a quarter of its life), so that
# one fetched just in time does not expire on its way.
TOKEN_MARGIN_SECONDS = 10
# Token answers are small JSON (Docker Hub's JWTs are a few KiB).
MAX_TOKEN_ANSWER_BYTES = 1024 * 1024
# Tokens kept per client: one per repository pulled lately; the oldest go first.
MAX_CACHED_TOKENS = 1024
# A WWW-Authenticate header longer than this is not parsed (no registry sends one).
MAX_CHALLENGE_CHARS = 8192

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_SEPARATORS = " \t,"


@dataclass(frozen=True)
class BasicCredentials:
    """A user name and password (or access token) for the upstream."""

    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        """The value of `Authorization` that sends these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


# Called lazily, when a challenge needs credentials (each Basic request and each token fetch):
# a source that is costly to ask keeps its answer (EcrLogin does). None: no credentials.
CredentialSource = Callable[[], Awaitable[BasicCredentials | None]]


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: its scheme (lower case) and parameters
    (names lower case, quoted values unquoted)."""

    scheme: str
    parameters: dict[str, str]


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge of the WWW-Authenticate header lines `headers`, in order. Malformed
    text ends the parse of its line; what was read before it is kept."""
    challenges: list[Challenge] = []
    for header in headers:
        if len(header) <= MAX_CHALLENGE_CHARS:
            challenges.extend(_challenges_of(header))
    return challenges


def _challenges_of(header: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    position = 0
    # Every turn consumes at least one character, so the loop ends.
    while position < len(header):
        while position < len(header) and header[position] in _SEPARATORS:
            position += 1
        name = _TOKEN.match(header, position)
        if name is None:
            break
        position = name.end()
        after = position
        while after < len(header) and header[after] in " \t":
            after += 1
        if after < len(header) and header[after] == "=" and challenges:
            position = after + 1
            while position < len(header) and header[position] in " \t":
                position += 1
            quoted = _QUOTED.match(header, position)
            if quoted is not None:
                value = _ESCAPE.sub(r"\1", quoted.group(1))
                position = quoted.end()
            else:
                token = _TOKEN.match(header, position)
                value = token.group() if token is not None else ""
                position = token.end() if token is not None else position
            challenges[-1].parameters.setdefault(name.group().lower(), value)
        else:
            challenges.append(Challenge(name.group().lower(), {}))
            # A token68 (`Negotiate abc==`) belongs to no scheme ecrd speaks: skip it.
            while position < len(header) and header[position] == "=":
                position += 1
    return challenges


def usable_challenge(headers: Iterable[str]) -> Challenge | None:
    """The challenge ecrd answers: Bearer where offered (tokens are scoped to a repository),
    else Basic; None when neither is offered."""
    challenges = parse_challenges(headers)
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


@dataclass(frozen=True)
class TokenKey:
    realm: str
    service: str
    scope: str


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    usable_until: float  # time.monotonic()


class BearerTokens:
    """Bearer tokens of one upstream, fetched from its realm and kept until shortly before
    they expire, per (realm, service, scope). Concurrent requests for one key wait for one
    fetch instead of each making their own."""

    def __init__(self, http: httpx.AsyncClient, registry_url: httpx.URL) -> None:
        self._http = http
        self._registry_url = registry_url
        self._tokens: OrderedDict[TokenKey, _Token] = OrderedDict()
        self._locks: dict[TokenKey, asyncio.Lock] = {}

    def key(self, challenge: Challenge, scope: str | None) -> TokenKey:
        """The key of the token a Bearer challenge asks for; `scope` is the one ecrd wants
        (pull of one repository; "" for none), else (None) the challenge's own."""
        realm = challenge.parameters.get("realm", "")
        url = _parsed_url(realm)
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise UpstreamInvalid(
                f"{where(self._registry_url)}: its Bearer challenge names no usable realm"
            )
        if self._registry_url.scheme == "https" and url.scheme != "https":
            # The credentials would travel in clear to get a token for an HTTPS registry.
            raise UpstreamInvalid(
                f"{where(self._registry_url)}: its token realm {where(url)} is not HTTPS"
            )
        chosen = scope if scope is not None else challenge.parameters.get("scope", "")
        return TokenKey(realm, challenge.parameters.get("service", ""), chosen)

    def cached(self, key: TokenKey) -> str | None:
        token = self._tokens.get(key)
        if token is None or time.monotonic() >= token.usable_until:
            return None
        return token.value

    async def token(
        self, key: TokenKey, credentials: CredentialSource | None, rejected: str | None = None
    ) -> str:
        """A token for `key`: the cached one unless it is `rejected` (the upstream refused it),
        else one fetched now."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                cached = self.cached(key)
                if cached is not None and cached != rejected:
                    return cached  # fetched by another request meanwhile
                login = await credentials() if credentials is not None else None
                value, lifetime = await self._fetch(key, login)
                margin = min(TOKEN_MARGIN_SECONDS, lifetime / 4)
                self._remember(key, _Token(value, time.monotonic() + lifetime - margin))
                return value
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def _remember(self, key: TokenKey, token: _Token) -> None:
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        while len(self._tokens) > MAX_CACHED_TOKENS:
            self._tokens.popitem(last=False)

    async def _fetch(self, key: TokenKey, login: BasicCredentials | None) -> tuple[str, float]:
        query = {name: value for name, value in (("service", key.service), ("scope", key.scope))}
        headers = {} if login is None else {"Authorization": login.header()}
        # Merged into a query the realm may have of its own (httpx's `params=` replaces it).
        url = httpx.URL(key.realm).copy_merge_params({k: v for k, v in query.items() if v})
        request = self._http.build_request("GET", url, headers=headers)
        response = await send(self._http, request)
        try:
            if response.status_code != 200:
                error = await failure(response)
                if isinstance(error, UpstreamUnauthorized):
                    who = "anonymous access" if login is None else "the credentials"
                    raise UpstreamUnauthorized(
                        f"the token endpoint refused {who}: {error.message}", error.status
                    )
                raise error
            body = await read_bounded(response, MAX_TOKEN_ANSWER_BYTES, "token answer")
        finally:
            await response.aclose()
        value, lifetime = _token_of(body)
        if value is None:
            raise UpstreamInvalid(f"{where(request.url)}: the token answer holds no token")
        logger.debug(
            "token for %r from %s, %s s", key.scope, where(request.url), lifetime
        )  # the scope and the realm only: the token itself is never logged
        return value, lifetime


def _token_of(body: bytes) -> tuple[str | None, float]:
    """The token of a token answer and how long it lasts (seconds)."""
    try:
        document = parse_json(body)
    except InputInvalid:
        return None, 0
    if not isinstance(document, dict):
        return None, 0
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        return None, 0
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_SECONDS
    return value, float(lifetime)


def _parsed_url(text: str) -> httpx.URL | None:
    try:
        return httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        return None
