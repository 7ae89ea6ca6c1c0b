"""``voisin serve``: collections over HTTP, speaking Qdrant's REST API so that
``qdrant_client.QdrantClient(url=...)`` works unchanged (the ``server`` extra:
FastAPI + uvicorn), and the client behind ``voisin.connect("http://...")``
(standard library only). See docs/server.md.

Example (in a shell)::

    voisin serve --path data/ --port 6333

then, in Python::

    from qdrant_client import QdrantClient
    client = QdrantClient(url="http://127.0.0.1:6333")
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app", "serve", "RemoteDatabase", "RemoteCollection"]

_LAZY = {"ServerConfig": ".app", "create_app": ".app", "serve": ".run",
         "RemoteDatabase": ".client", "RemoteCollection": ".client"}


def __getattr__(name: str) -> Any:
    # the app needs FastAPI (the server extra); the client needs nothing: import on use
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'voisin.server' has no attribute {name!r}")
