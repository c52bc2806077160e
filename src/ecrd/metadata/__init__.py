"""The metadata store: one SQLAlchemy schema over SQLite (default) and PostgreSQL."""
