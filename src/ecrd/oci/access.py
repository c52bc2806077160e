"""Who may do what on /v2/: registry-token logins, and each request as the ECR action it is.

A client logs in with Basic auth, user `AWS` and a GetAuthorizationToken token (what
`aws ecr get-login-password` prints). Every request is then authorized exactly like the API
call it stands for (a manifest GET is `ecr:BatchGetImage`, a PATCH `ecr:UploadLayerPart`, ...),
against the same identity, repository and registry policies. A request without credentials
is anonymous: it gets through only where a repository policy grants `*`, and otherwise gets
401 with the Basic challenge, which makes clients that have credentials send them.

The Docker engine is the exception: after a Basic challenge it refuses to send a request
without credentials ("no basic auth credentials"), so it could never pull a public
repository without logging in. Docker is therefore given ECR Public's Bearer flow on every
host: a Bearer challenge naming `/token`, which turns its `AWS:<token>` login into a Bearer
token (or, without a login, gives an anonymous one). Other clients see ECR's Basic flow.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecrd.auth.authorizer import AccessDenied, Origin, Target
from ecrd.auth.principals import ANONYMOUS, Principal, root_of
from ecrd.auth.tokens import EXPIRES_PARAMETER, SIGNATURE_PARAMETER
from ecrd.metadata.records import Registry, Repository
from ecrd.metadata.registries import PolicyAndScope
from ecrd.names import check_repository_name
from ecrd.oci.errors import OciError, error_response
from ecrd.oci.requests import address_of, registry_of, services_of
from ecrd.registry.repositories import repository_arn, repository_not_found
from ecrd.settings import Settings

Endpoint = Callable[[Request], Awaitable[Response]]

PULL = "ecr:BatchGetImage"
DOWNLOAD = "ecr:GetDownloadUrlForLayer"
CHECK_LAYER = "ecr:BatchCheckLayerAvailability"
INITIATE_UPLOAD = "ecr:InitiateLayerUpload"
UPLOAD_PART = "ecr:UploadLayerPart"
COMPLETE_UPLOAD = "ecr:CompleteLayerUpload"
PUSH = "ecr:PutImage"
DELETE = "ecr:BatchDeleteImage"
LIST = "ecr:ListImages"
CATALOG = "ecr:DescribeRepositories"
# A push into a repository that does not exist yet creates it (create-on-push).
CREATE = "ecr:CreateRepository"
# A pull through a cache rule of an image the cache does not have yet.
IMPORT_UPSTREAM = "ecr:BatchImportUpstreamImage"
_PUSH_ACTIONS = {INITIATE_UPLOAD, UPLOAD_PART, COMPLETE_UPLOAD, PUSH}
# What anyone may do to a public repository, signed in or not.
_PUBLIC_READS = {PULL, DOWNLOAD, CHECK_LAYER, LIST}

TOKEN_EXPIRED = "Your authorization token has expired. Reauthenticate and try again."
# The token endpoint's answer to a caller without credentials: it may only pull.
ANONYMOUS_BEARER = "anonymous"


class Unauthorized(Exception):
    """No usable credentials: answered with 401 and the Basic challenge."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


Actions = str | Callable[[Request], tuple[str, ...]] | None


def start_upload_actions(request: Request) -> tuple[str, ...]:
    """A POST with `digest` is a whole upload in one request, and a mount creates the layer
    at once: each needs every action of the upload it stands for."""
    if "digest" in request.query_params:
        return (INITIATE_UPLOAD, UPLOAD_PART, COMPLETE_UPLOAD)
    if "mount" in request.query_params:
        return (INITIATE_UPLOAD, COMPLETE_UPLOAD)
    return (INITIATE_UPLOAD,)


def finish_upload_actions(request: Request) -> tuple[str, ...]:
    """A closing PUT that carries bytes is also a part."""
    length = request.headers.get("content-length")
    if length not in (None, "0") or "transfer-encoding" in request.headers:
        return (UPLOAD_PART, COMPLETE_UPLOAD)
    return (COMPLETE_UPLOAD,)


def guarded(endpoint: Endpoint, actions: Actions) -> Endpoint:
    """`endpoint`, run only for callers allowed its actions: one, several depending on the
    request, or None for any signed-in caller."""

    async def admitted(request: Request) -> Response:
        if actions is None or isinstance(actions, str):
            await admit(request, None if actions is None else (actions,))
        else:
            await admit(request, actions(request))
        return await endpoint(request)

    admitted.__name__ = endpoint.__name__
    return admitted


async def admit(request: Request, actions: tuple[str, ...] | None) -> None:
    if actions == (DOWNLOAD,) and await _presigned(request):
        return
    if "name" in request.path_params:
        await address_of(request)  # first: whether Bearer tokens count depends on it
    principal = await authenticate(request)
    request.state.principal = principal
    if actions is None:
        if principal.is_anonymous:
            raise Unauthorized("authentication required")
        return
    if "name" not in request.path_params:
        registry = await registry_of(request)
        await _check(request, principal, actions, Target(registry, repository_arn(registry, "*")))
        return
    registry, name = await address_of(request)
    check_repository_name(name)
    policy_and_scope, repository = await _repository_and_policy(request, actions, registry, name)
    # The handlers reuse this lookup instead of repeating it.
    request.state.repository = repository
    if registry.kind == "public":
        await _admit_public(
            request, principal, actions, registry, name, repository, policy_and_scope
        )
        return
    if repository is None and _PUSH_ACTIONS.intersection(actions):
        actions = (*actions, CREATE)
    elif repository is None and PULL in actions:
        # A first pull through a cache rule makes the repository and imports the image: ECR
        # asks for both permissions then.
        rules = services_of(request).pull_through_rules
        if await rules.covering(registry, name) is not None:
            actions = (*actions, CREATE, IMPORT_UPSTREAM)
    resource = repository_arn(registry, name)
    await _check(
        request, principal, actions, Target(registry, resource, repository, policy_and_scope)
    )


async def _repository_and_policy(
    request: Request, actions: tuple[str, ...], registry: Registry, name: str
) -> tuple[PolicyAndScope, Repository | None]:
    """The repository and the registry policy the check needs, in one read. For a manifest
    pull that read also finds the manifest, which the handler then takes
    (`request.state.pull`): a pull costs one read in all."""
    services = services_of(request)
    reference = request.path_params.get("reference")
    if actions == (PULL,) and reference is not None and request.method in ("GET", "HEAD"):
        pull = await services.manifests.authorized_pull(registry, name, reference)
        if pull is not None:
            request.state.pull = pull
            return pull.policy_and_scope, None if pull.found is None else pull.found[0]
    return await services.registries.policy_scope_and_repository(registry.id, name)


async def _admit_public(
    request: Request,
    principal: Principal,
    actions: tuple[str, ...],
    registry: Registry,
    name: str,
    repository: Repository | None,
    policy_and_scope: PolicyAndScope,
) -> None:
    """ECR Public: anyone may pull; anything else is its `ecr-public:` action, and a push
    needs the repository to exist (ECR Public creates none on push)."""
    needed = [action for action in actions if action not in _PUBLIC_READS]
    if not needed:
        return
    if principal.is_anonymous:
        raise Unauthorized("authentication required")
    if repository is None:
        raise repository_not_found(registry, name)
    public_actions = tuple("ecr-public:" + action.removeprefix("ecr:") for action in needed)
    target = Target(registry, repository.arn, repository, policy_and_scope)
    await _check(request, principal, public_actions, target)


async def allowed(request: Request, action: str, registry: Registry, name: str) -> bool:
    """Whether the request's caller may also do `action` on another repository (a mount's
    source); False when that repository does not exist."""
    repository = await services_of(request).repositories.lookup(registry, name)
    if repository is None:
        return False
    if registry.kind == "public" and action in _PUBLIC_READS:
        return True
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    try:
        await _check(request, principal, (action,), Target(registry, repository.arn, repository))
    except (OciError, Unauthorized):
        return False
    return True


async def _check(
    request: Request, principal: Principal, actions: tuple[str, ...], target: Target
) -> None:
    origin = Origin(
        source_ip=request.client.host if request.client else None,
        # From the scope: building request.url for its scheme costs more than the check.
        secure=request.scope.get("scheme") == "https",
    )
    try:
        await services_of(request).authorizer.check(principal, actions, target, origin)
    except AccessDenied as denied:
        if principal.is_anonymous:
            raise Unauthorized("authentication required") from None
        raise OciError(403, "DENIED", denied.message) from None


async def authenticate(request: Request) -> Principal:
    """The caller a request's credentials name; ANONYMOUS when it sends none."""
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "open":
        return root_of(settings.account_id)
    token = registry_token_of(request)
    if token is None:
        return ANONYMOUS
    services = services_of(request)
    claims = await services.tokens.read(token)
    if claims is None:
        raise Unauthorized("invalid username or authorization token")
    if claims.expired:
        raise OciError(403, "DENIED", TOKEN_EXPIRED)
    principal = await services.identities.principal(
        claims.account_id, claims.user_name, claims.user_id
    )
    if principal is None:
        raise Unauthorized("the user this token was issued to no longer exists")
    return principal


def registry_token_of(request: Request) -> str | None:
    """The registry token a request carries: the password of Basic `AWS:<token>`, or, for ECR
    Public, a Bearer token (what its clients send after the token endpoint); None for none."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and _bearer_flow(request):
        token = credentials.strip()
        return None if token in ("", ANONYMOUS_BEARER) else token
    if scheme.lower() != "basic":
        raise Unauthorized("log in with Basic authentication: user AWS, a registry token")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        user, _, password = decoded.partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 once decoded
        raise Unauthorized("malformed Basic credentials") from None
    if not user and not password:
        # What clients such as skopeo send when they have no credentials for this host.
        return None
    if user != "AWS":
        raise Unauthorized("invalid username or authorization token")
    return password


def _bearer_flow(request: Request) -> bool:
    """Whether the request follows ECR Public's Bearer flow: for ECR Public, or from the
    Docker engine (see the module's docstring)."""
    return _addresses_public(request) or _is_docker_engine(request)


def _is_docker_engine(request: Request) -> bool:
    # Docker's User-Agent: "docker/28.2.2 go/go1.24.3 git-commit/... os/linux arch/amd64 ..."
    return request.headers.get("user-agent", "").startswith("docker/")


def _addresses_public(request: Request) -> bool:
    """Whether the request is for ECR Public: its host, or a public repository's path."""
    if services_of(request).hosts.public_host_named_by(request.headers.get("host")):
        return True
    address = getattr(request.state, "address", None)
    return address is not None and address[0].kind == "public"


async def token_endpoint(request: Request) -> Response:
    """The Bearer realm of the public host: Basic `AWS:<token>` in, that token out (checked
    first); no credentials in, an anonymous token out, which pulls public repositories."""
    principal = await authenticate(request)
    token = ANONYMOUS_BEARER if principal.is_anonymous else registry_token_of(request)
    return JSONResponse({"token": token, "access_token": token})


async def _presigned(request: Request) -> bool:
    """A download URL from GetDownloadUrlForLayer, still valid."""
    query = request.query_params
    if SIGNATURE_PARAMETER not in query:
        return False
    return await services_of(request).tokens.presigned(
        request.url.path, query.get(EXPIRES_PARAMETER), query.get(SIGNATURE_PARAMETER)
    )


async def unauthorized(request: Request, error: Exception) -> Response:
    if not isinstance(error, Unauthorized):
        raise error
    settings: Settings = request.app.state.settings
    host = request.headers.get("host", settings.public_address).replace('"', "")
    if _bearer_flow(request):
        # ECR Public's flow: a Bearer challenge naming the token endpoint (and the scope).
        challenge = f'Bearer realm="{settings.public_scheme}://{host}/token",service="{host}"'
        name = request.path_params.get("name", "").replace('"', "")
        if name:
            challenge += f',scope="repository:{name}:pull,push"'
    else:
        realm = f"{settings.public_scheme}://{host}"
        challenge = f'Basic realm="{realm}",service="ecr.amazonaws.com"'
    return error_response(
        request, 401, "UNAUTHORIZED", error.message, headers={"WWW-Authenticate": challenge}
    )
