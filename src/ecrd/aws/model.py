"""The botocore service models ecrd answers, loaded once from the installed botocore."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel


@dataclass(frozen=True)
class AwsService:
    """One botocore service: its name (`ecr`), the X-Amz-Target prefix and the model."""

    name: str
    target_prefix: str
    model: ServiceModel

    def operation(self, operation_name: str) -> OperationModel | None:
        if operation_name not in self.model.operation_names:
            return None
        return self.model.operation_model(operation_name)


def load_services(
    names: tuple[str, ...] = ("ecr", "ecr-public", "secretsmanager"),
) -> dict[str, AwsService]:
    """The services by X-Amz-Target prefix."""
    loader = Loader()
    services = {}
    for name in names:
        model = ServiceModel(loader.load_service_model(name, "service-2"), name)
        services[model.metadata["targetPrefix"]] = AwsService(
            name, model.metadata["targetPrefix"], model
        )
    return services
