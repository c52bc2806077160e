"""The AWS JSON 1.1 edge: the ecr and ecr-public APIs."""
