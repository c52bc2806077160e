"""Talking to other registries as a client that pushes (replication to other installations)."""
