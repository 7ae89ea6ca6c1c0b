"""Starting and reaching Ray, and what a failed call to an actor means."""

from __future__ import annotations

import os
from typing import Any


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("voisin.distributed needs Ray: pip install 'voisin[ray]'") from None
    return ray


def init(address: str | None = None, *, num_cpus: int | None = None, **kwargs: Any) -> Any:
    """Connect to Ray: a local cluster on this machine's loopback by default,
    or the cluster at ``address`` (e.g. "ray://head:10001" or "auto").

    Usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says otherwise.
    Returns Ray's context; a second call while connected returns at once.

    Example:
        >>> import voisin.distributed as vd
        >>> ctx = vd.init(num_cpus=2)   # doctest: +SKIP
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        keep_on_loopback()
    ray = import_ray()
    if ray.is_initialized():
        return ray.get_runtime_context()
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", False)
    if address is None:
        kwargs.setdefault("_node_ip_address", "127.0.0.1")
        return ray.init(num_cpus=num_cpus, **kwargs)
    return ray.init(address=address, **kwargs)


def keep_on_loopback() -> None:
    """Make a local cluster listen on 127.0.0.1 only.

    On Linux Ray replaces a node address of 127.0.0.1 by the machine's network
    address (``services.resolve_ip_for_localhost``), so ``_node_ip_address`` alone
    still binds every Ray process to the public interface. Ray's switch for
    single-machine clusters (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps them on
    loopback; it is read when Ray is imported, so an imported Ray is switched too.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import sys
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        constants.ENABLE_RAY_CLUSTER = False


def shutdown() -> None:
    """Disconnect from Ray (and stop the local cluster :func:`init` started)."""
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


def is_actor_failure(exc: BaseException) -> bool:
    """The actor died, is restarting or cannot be reached: another replica may answer."""
    ray = import_ray()
    return isinstance(exc, ray.exceptions.RayActorError)


def unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside Ray's RayTaskError (a ValueError stays a ValueError)."""
    ray = import_ray()
    if isinstance(exc, ray.exceptions.RayTaskError):
        return exc.as_instanceof_cause()
    return exc
