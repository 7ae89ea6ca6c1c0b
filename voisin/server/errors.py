"""Errors the server answers with, in Qdrant's shape:
``{"status": {"error": "..."}, "time": ...}`` and a 4xx status.

Everything a handler raises is mapped here, once: the collection layer's
exceptions keep their message (it names the argument at fault); anything
unexpected becomes a 500 whose body says only that the error was logged,
never a traceback.
"""

from __future__ import annotations

from ..db.errors import (CollectionExistsError, CollectionNotFoundError, DatabaseError,
                         FilterError, PointNotFoundError, ReadOnlyError)


class ApiError(Exception):
    """An answer other than 200: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def unsupported(what: str) -> ApiError:
    """A part of Qdrant's API that voisin does not serve: said, never ignored."""
    return ApiError(400, f"Unsupported: {what} is not supported by voisin serve")


def status_of(exc: BaseException) -> tuple[int, str] | None:
    """(HTTP status, message) of an exception a request may cause, or None for a bug."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, CollectionNotFoundError):
        return 404, f"Not found: {exc}"
    if isinstance(exc, PointNotFoundError):
        return 404, f"Not found: {exc}"
    if isinstance(exc, CollectionExistsError):
        return 409, f"Wrong input: {exc}"
    if isinstance(exc, ReadOnlyError):
        return 403, f"Forbidden: {exc}"
    if isinstance(exc, (FilterError, ValueError, TypeError)):
        return 400, f"Wrong input: {exc}"
    if isinstance(exc, RecursionError):
        return 400, "Wrong input: the request body nests too deeply"
    if isinstance(exc, DatabaseError):
        return 503, f"Service unavailable: {exc}"
    return None
