"""API keys as Qdrant has them: an ``api-key`` header (or ``Authorization:
Bearer``), a full key and a read-only key that can search but not write.

Keys are compared in constant time (``hmac.compare_digest``). The probes
(``/healthz``, ``/livez``, ``/readyz``) need no key; every other endpoint,
``/metrics`` and ``/docs`` included, does once a key is set.

Example:
    >>> keys = Keys("admin-secret", "reader")
    >>> keys.check({"api-key": "reader"}, "POST", "/collections/c/points/query")
    (0, '')
    >>> keys.check({"api-key": "reader"}, "PUT", "/collections/c/points")[0]
    403
"""

from __future__ import annotations

import hmac
import re
from typing import Mapping

#: POST endpoints that only read (Qdrant sends searches and retrievals as POST)
_READ_POSTS = re.compile(r"/collections/[^/]+/points(/count|/scroll|/query|/query/batch|/query/groups"
                         r"|/search|/search/batch)?")


def is_read(method: str, path: str) -> bool:
    """Whether a request only reads (a read-only key may make it)."""
    return method in ("GET", "HEAD", "OPTIONS") or (method == "POST" and _READ_POSTS.fullmatch(path) is not None)


def _same(given: str, key: str | None) -> bool:
    return key is not None and hmac.compare_digest(given.encode(), key.encode())


class Keys:
    """The server's keys; ``check`` says whether a request may go on."""

    def __init__(self, api_key: str | None, read_only_key: str | None):
        for name, key in (("api_key", api_key), ("read_only_key", read_only_key)):
            if key is not None and (not isinstance(key, str) or not key.strip()):
                raise ValueError(f"{name}: expected a non-empty string, got {key!r}")
        if api_key is not None and api_key == read_only_key:
            raise ValueError("read_only_key: must differ from api_key")
        self.api_key = api_key
        self.read_only_key = read_only_key

    @property
    def enabled(self) -> bool:
        return self.api_key is not None or self.read_only_key is not None

    def check(self, headers: Mapping[str, str], method: str, path: str) -> tuple[int, str]:
        """(0, "") to go on, else (401 or 403, message)."""
        if not self.enabled:
            return 0, ""
        given = headers.get("api-key")
        if given is None:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        if not given:
            return 401, "Unauthorized: this server needs an API key (header api-key, or Authorization: Bearer)"
        if _same(given, self.api_key):
            return 0, ""
        if _same(given, self.read_only_key):
            if is_read(method, path):
                return 0, ""
            return 403, f"Forbidden: the read-only key cannot {method} {path}"
        return 401, "Unauthorized: wrong API key"
