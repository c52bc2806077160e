"""ecrd: a self-hosted registry speaking the Amazon ECR APIs and the OCI Distribution API."""

__version__ = "0.1.0"
