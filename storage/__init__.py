"""Durable conversation storage (SQLAlchemy; SQLite by default)."""
