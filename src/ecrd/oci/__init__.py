"""The OCI Distribution Spec v1.1 edge: /v2/ routes, one module per resource."""
