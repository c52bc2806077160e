"""The public gallery: server-rendered pages of the ECR Public repositories."""
