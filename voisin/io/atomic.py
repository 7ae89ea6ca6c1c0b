"""Crash-safe file replacement: temporary file, fsync, rename.

A reader of ``path`` sees either the previous file or the complete new one,
never a torn mixture, even if the writing process is killed or the machine
loses power: the data is flushed and fsynced before ``os.replace`` swaps the
directory entry, and the directory is fsynced after it so the rename itself is
durable. Processes that memory-mapped the old file keep their (old) inode.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def _umask_mode() -> int:
    # mkstemp creates 0600 files; a plain open() would give 0666 & ~umask,
    # which is what users of write_index expect to find.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it over ``path``.

    On any error (or KeyboardInterrupt) the temporary file is removed and
    ``path`` is untouched. A kill -9 can leave a ``.<name>.*.tmp`` file behind
    in the directory, never a damaged ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = _umask_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(dfd)
