"""AWS JSON errors, and the one table mapping domain errors to ECR's exception shapes."""

from __future__ import annotations

from typing import Any

from botocore.model import OperationModel

from ecrd import errors

# Shape names exactly as in the ecr, ecr-public and secretsmanager models. Where the services
# name one error differently, a tuple of candidates: the first the operation models wins.
AWS_ERRORS: dict[type[errors.RegistryError], str | tuple[str, ...]] = {
    errors.NameInvalid: "InvalidParameterException",
    errors.TagInvalid: "InvalidParameterException",
    errors.DigestMismatch: "ImageDigestDoesNotMatchException",
    errors.DigestInvalid: "InvalidParameterException",
    errors.SizeInvalid: "InvalidParameterException",
    errors.ParameterInvalid: "InvalidParameterException",
    errors.PolicyInvalid: "InvalidParameterException",
    errors.ManifestInvalid: "InvalidParameterException",
    errors.ManifestTooLarge: "InvalidParameterException",
    errors.RepositoryNotFound: "RepositoryNotFoundException",
    errors.ManifestNotFound: "ImageNotFoundException",
    errors.BlobNotFound: "LayersNotFoundException",
    errors.UploadNotFound: "UploadNotFoundException",
    errors.PolicyNotFound: "RepositoryPolicyNotFoundException",
    errors.RepositoryAlreadyExists: "RepositoryAlreadyExistsException",
    errors.RepositoryNotEmpty: "RepositoryNotEmptyException",
    errors.TooManyTags: "TooManyTagsException",
    errors.UploadOutOfOrder: "InvalidLayerPartException",
    errors.UploadEmpty: "EmptyUploadException",
    errors.BlobAlreadyExists: "LayerAlreadyExistsException",
    errors.ManifestChildUnknown: "ReferencedImagesNotFoundException",
    errors.ManifestBlobUnknown: "LayersNotFoundException",
    errors.ImageAlreadyExists: "ImageAlreadyExistsException",
    errors.TagImmutable: "ImageTagAlreadyExistsException",
    errors.TooManyUploads: "LimitExceededException",
    errors.UploadTooFragmented: "LimitExceededException",
    errors.StorageFull: "ServerException",
    errors.LifecyclePolicyNotFound: "LifecyclePolicyNotFoundException",
    errors.LifecyclePreviewNotFound: "LifecyclePolicyPreviewNotFoundException",
    errors.LifecyclePreviewInProgress: "LifecyclePolicyPreviewInProgressException",
    errors.StorageClassChangeRefused: "ImageStorageClassUpdateNotSupportedException",
    errors.ExclusionAlreadyExists: "ExclusionAlreadyExistsException",
    errors.ExclusionNotFound: "ExclusionNotFoundException",
    errors.TooManyExclusions: "LimitExceededException",
    errors.TemplateAlreadyExists: "TemplateAlreadyExistsException",
    errors.TemplateNotFound: "TemplateNotFoundException",
    errors.TooManyTemplates: "LimitExceededException",
    # Secrets Manager's names first; ECR's (a pull-through cache rule's credential) after.
    errors.SecretNotFound: ("ResourceNotFoundException", "SecretNotFoundException"),
    errors.SecretScheduledForDeletion: ("InvalidRequestException", "SecretNotFoundException"),
    errors.SecretAlreadyExists: "ResourceExistsException",
    errors.SecretUndecryptable: ("DecryptionFailure", "UnableToDecryptSecretValueException"),
    errors.PullThroughRuleAlreadyExists: "PullThroughCacheRuleAlreadyExistsException",
    errors.PullThroughRuleNotFound: "PullThroughCacheRuleNotFoundException",
    errors.TooManyPullThroughRules: "LimitExceededException",
    errors.UpstreamRegistryUnsupported: "UnsupportedUpstreamRegistryException",
    errors.SecretInaccessible: "UnableToAccessSecretException",
    errors.UpstreamUnavailable: "ServerException",
    errors.BackfillInProgress: "ReplicationBackfillInProgressException",
    errors.BackfillNotFound: "ReplicationBackfillNotFoundException",
    errors.BackfillStatusInvalid: "ReplicationBackfillInvalidStatusException",
    errors.TooManyBackfills: "LimitExceededException",
    errors.SigningConfigurationNotFound: "SigningConfigurationNotFoundException",
    errors.ScanNotFound: "ScanNotFoundException",
    errors.ImageTypeUnsupported: "UnsupportedImageTypeException",
    errors.ScanQuotaExceeded: "LimitExceededException",
    errors.ScanOfArchivedImage: "ImageArchivedException",
}
# The HTTP status of an error that is not the client's (400 otherwise). 507 rather than 500:
# a full disk is a known condition with its own status, and clients do not retry it blindly.
_STATUSES: dict[type[errors.RegistryError], int] = {
    errors.StorageFull: 507,
    errors.BlobBusy: 503,
    errors.UpstreamUnavailable: 503,
}

# Used when an operation's model does not list the error the domain raised.
_GENERIC_ERRORS = ("InvalidParameterException", "ValidationException")


class AwsError(Exception):
    """An error to answer as `{"__type": code, "message": ..., **fields}`."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields


def modeled_errors(operation: OperationModel) -> set[str]:
    return {shape.name for shape in operation.error_shapes}


def generic_error(operation: OperationModel) -> str:
    """The operation's catch-all client error: InvalidParameter, else Validation."""
    names = modeled_errors(operation)
    return next((name for name in _GENERIC_ERRORS if name in names), "ValidationException")


def from_registry_error(error: errors.RegistryError, operation: OperationModel) -> AwsError:
    mapped = next(
        (AWS_ERRORS[kind] for kind in type(error).__mro__ if kind in AWS_ERRORS),
        "InvalidParameterException",
    )
    candidates = (mapped,) if isinstance(mapped, str) else mapped
    modeled = modeled_errors(operation)
    code = next((name for name in candidates if name in modeled), generic_error(operation))
    status = next((_STATUSES[kind] for kind in type(error).__mro__ if kind in _STATUSES), 400)
    return AwsError(code, error.message, status=status)


def unsupported(operation: OperationModel) -> AwsError:
    """The answer for an operation of the model that ecrd does not implement yet."""
    names = modeled_errors(operation)
    code = "UnsupportedCommandException" if "UnsupportedCommandException" in names else None
    return AwsError(
        code or generic_error(operation),
        f"ecrd does not support {operation.name} yet",
    )
