"""Errors of the store layer; each says what is wrong and what to do."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class DatabaseUrlError(StoreError):
    """The database URL is not one Boomerang can use."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer Boomerang than this one."""


class SchemaOutOfDateError(StoreError):
    """The database schema is older than the code and migrations are off."""


class JobAlreadyActiveError(StoreError):
    """An unfinished callback job with the same deduplication key exists."""

    def __init__(self, deduplication_key: str) -> None:
        super().__init__(
            f"an unfinished callback job already exists for {deduplication_key!r}; "
            "one pending or active callback per mobile at a time"
        )
        self.deduplication_key = deduplication_key
