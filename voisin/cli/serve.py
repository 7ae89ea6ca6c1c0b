"""``voisin serve``: the collections of a folder over Qdrant's REST API (voisin.server)."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--path", "path", required=True, type=click.Path(file_okay=False),
              help="Database folder (created if missing).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; without --api-key only a loopback address is allowed.")
@click.option("--port", type=click.IntRange(0, 65535), default=6333, show_default=True)
@click.option("--api-key", envvar="VOISIN_API_KEY", default=None,
              help="Key for every request (header api-key or Authorization: Bearer); env VOISIN_API_KEY.")
@click.option("--read-only-key", envvar="VOISIN_READ_ONLY_KEY", default=None,
              help="Key that may search and read but not write; env VOISIN_READ_ONLY_KEY.")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Threads that run requests (one process owns the folder).")
@click.option("--max-body-mb", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Largest request body accepted.")
@click.option("--max-batch", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Most points per write request.")
@click.option("--max-limit", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Largest limit (k) and offset of a query or scroll.")
@click.option("--snapshots", "snapshots_path", default=None, type=click.Path(file_okay=False),
              help="Folder for snapshots (default PATH/snapshots).")
@click.option("--durability", type=click.Choice(["full", "normal"]), default="full", show_default=True,
              help="full: fsync at each write (survives power loss); normal: survives a killed process.")
@click.option("--text", is_flag=True,
              help="Embed documents and text queries with voisin.embed.TextEncoder (text extra).")
@click.option("--ray", "ray_shards", type=click.IntRange(0, 4096), default=0, show_default=True,
              help="Hash-shard every collection over this many Ray actors (ray extra); 0: one process.")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (default: a local cluster on 127.0.0.1).")
@click.option("--allow-remote-without-key", is_flag=True,
              help="Bind a non-loopback address even without --api-key.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True)
def command(path: str, host: str, port: int, api_key: str | None, read_only_key: str | None,
            workers: int, max_body_mb: int, max_batch: int, max_limit: int,
            snapshots_path: str | None, durability: str, text: bool, ray_shards: int,
            ray_address: str | None, allow_remote_without_key: bool,
            log_level: str) -> None:
    """Serve the collections in PATH over HTTP; qdrant-client talks to it unchanged."""
    try:
        from voisin.server import ServerConfig, serve
        from voisin.server.qdrant import Limits
    except ImportError as exc:
        raise click.ClickException(f"voisin serve needs the server extra: pip install 'voisin[server]' ({exc})")
    config = ServerConfig(path=path, api_key=api_key, read_only_key=read_only_key,
                          max_body_bytes=max_body_mb << 20, workers=workers,
                          limits=Limits(max_points=max_batch, max_limit=max_limit),
                          snapshots_path=snapshots_path, durability=durability, text=text,
                          ray_shards=ray_shards, ray_address=ray_address)
    try:
        serve(config, host, port, allow_remote_without_key=allow_remote_without_key,
              say=lambda m: m and click.echo(m, err=True), log_level=log_level)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
