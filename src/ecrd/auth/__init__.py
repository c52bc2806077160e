"""Authentication: registry tokens (and, later, SigV4 and policy evaluation)."""
