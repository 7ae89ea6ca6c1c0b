"""Exceptions of the collection layer; each message names the argument or the
JSON path at fault and what was expected."""

from __future__ import annotations


class DatabaseError(RuntimeError):
    """A database folder that cannot be used as asked."""


class NotADatabaseError(DatabaseError):
    """The folder (or snapshot file) is not a voisin database."""


class DatabaseLockedError(DatabaseError):
    """Another process (or another connection) has the folder open for writing."""


class ReadOnlyError(DatabaseError):
    """A write on a database opened with ``read_only=True``."""


class CollectionNotFoundError(KeyError):
    """No collection of that name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class CollectionExistsError(ValueError):
    """create_collection of a name already taken."""


class FilterError(ValueError):
    """A malformed filter; the message starts with the JSON path of the bad field."""


class PointNotFoundError(KeyError):
    """A write that names a point the collection does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
