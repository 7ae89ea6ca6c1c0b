"""``voisin serve``: collections over HTTP, speaking Qdrant's REST API so that
``qdrant_client.QdrantClient(url=...)`` works unchanged (the ``server`` extra:
FastAPI + uvicorn). See docs/server.md.

Example (in a shell)::

    voisin serve --path data/ --port 6333

then, in Python::

    from qdrant_client import QdrantClient
    client = QdrantClient(url="http://127.0.0.1:6333")
"""

from .app import ServerConfig, create_app
from .run import serve

__all__ = ["ServerConfig", "create_app", "serve"]
