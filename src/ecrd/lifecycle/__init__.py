"""Amazon ECR's lifecycle-policy language, pure: `policy` parses and validates a policy text as
ECR does, `evaluation` decides which of a repository's images a policy expires or archives.
Nothing here touches the database, the blob store or HTTP."""
