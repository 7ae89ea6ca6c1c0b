"""Start the server (``voisin serve``): checks, then uvicorn.

Without an API key the server answers anyone who can reach it, so it binds to
loopback only unless ``allow_remote_without_key`` says otherwise; it says so
at start.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Callable

from .app import ServerConfig, create_app

log = logging.getLogger("voisin.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 6333, *,
          allow_remote_without_key: bool = False, say: Callable[[str], None] = print,
          log_level: str = "warning") -> None:
    """Serve ``config.path`` on ``host:port`` until interrupted (SIGINT / SIGTERM
    close the database cleanly; a SIGKILL loses no acknowledged write either)."""
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("voisin serve needs the server extra: pip install 'voisin[server]'") from None
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port: expected an integer in [0, 65535], got {port!r}")
    keyed = config.api_key is not None or config.read_only_key is not None
    if not keyed and not is_loopback(host):
        if not allow_remote_without_key:
            raise ValueError(f"host: {host!r} is not a loopback address and no --api-key is set: "
                             "anyone on the network could read and write the database. Set --api-key, "
                             "or pass --allow-remote-without-key if that is intended")
        say(f"warning: serving {host} without an API key: anyone who can reach it can write")
    if not keyed:
        say("no API key set: every request is allowed (loopback only)" if is_loopback(host) else "")
    say(f"voisin serve: {config.path} on http://{host}:{port} (docs at /docs)")
    app = create_app(config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=10)
