"""The outbox table's migrations."""
