"""Alembic migration scripts of the 95598 database (run through cti.db.migrate)."""
