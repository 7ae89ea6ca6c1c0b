"""Saving is atomic: a writer killed mid-write leaves the old file or the new one.

The writer runs in a child process that is SIGKILLed while ``write_index`` is
between two chunks of a large index; the target must still open, with the
content of either the previous or the new version, never a torn mixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import voisin

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

# The child writes version A (all vectors = 1.0) once, then repeatedly
# version B / A alternately. It slows the write of every chunk after the
# first, so the parent reliably catches it in the middle of a write.
CHILD = textwrap.dedent("""
    import sys, time, numpy as np, voisin
    from voisin.io import atomic
    path, pause = sys.argv[1], float(sys.argv[2])
    def make(v):
        index = voisin.IndexIDMap2(voisin.IndexFlatL2(64))
        index.add_with_ids(np.full((20000, 64), v, np.float32), np.arange(20000) * 3)
        return index
    versions = [make(1.0), make(2.0)]
    voisin.write_index(versions[0], path)
    real = atomic.atomic_write
    def slow_atomic_write(p, write):
        def slow(f):
            class Slow:
                def write(self, chunk):
                    f.write(chunk)
                    f.flush()
                    print("mid-write", flush=True)
                    time.sleep(pause)
            write(Slow())
        real(p, slow)
    voisin.io.faiss_format.atomic_write = slow_atomic_write
    print("ready", flush=True)
    i = 1
    while True:
        voisin.write_index(versions[i % 2], path)
        i += 1
""")


def _check_intact(path) -> float:
    index = voisin.read_index(path)  # checksum verified: a torn file would raise
    assert index.ntotal == 20000
    values = np.unique(index.index.xb)
    assert values.size == 1 and values[0] in (1.0, 2.0), values
    return float(values[0])


def _run_child(path, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(pause)],
                            stdout=subprocess.PIPE, text=True)


def test_kill_during_write_leaves_old_or_new_file(tmp_path):
    path = tmp_path / "index.bin"
    proc = _run_child(path, 0.2)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip() == "mid-write"
        # the temporary file is being written right now
        tmps = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
        assert tmps, "expected the writer's temporary file next to the target"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # the kill hit during the second write (B): the old version A is intact
    assert _check_intact(path) == 1.0
    # the torn temporary file really is torn: it does not open as an index
    tmp = tmp_path / tmps[0]
    with pytest.raises(ValueError):
        voisin.read_index(tmp)


def test_kills_at_random_moments(tmp_path):
    """Kill the writer at arbitrary times, many times: the file is always whole."""
    path = tmp_path / "index.bin"
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(3):
        proc = _run_child(path, 0.002)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(float(rng.uniform(0.0, 0.3)))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        seen.add(_check_intact(path))
    assert seen <= {1.0, 2.0}


def test_failed_write_keeps_the_old_file(tmp_path):
    from voisin.io.atomic import atomic_write
    path = tmp_path / "index.bin"
    good = voisin.IndexFlatL2(4)
    good.add(np.eye(4))
    voisin.write_index(good, path)
    before = path.read_bytes()

    def fails_half_way(f):
        f.write(before[:10])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fails_half_way)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["index.bin"], "temporary file left behind"
    # a writer that cannot serialize fails before touching the directory
    with pytest.raises(TypeError, match="no file format"):
        voisin.write_index(voisin.Index(4), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["index.bin"]


def test_file_mode_follows_umask_and_existing_file(tmp_path):
    path = tmp_path / "index.bin"
    index = voisin.IndexFlatL2(2)
    voisin.write_index(index, path)
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
    path.chmod(0o640)
    voisin.write_index(index, path)
    assert (path.stat().st_mode & 0o777) == 0o640


def test_readers_never_see_a_partial_file_while_writing(tmp_path):
    """Readers running during repeated saves always open a complete version."""
    import threading
    path = tmp_path / "index.bin"
    versions = []
    for v in (1.0, 2.0):
        index = voisin.IndexFlatL2(32)
        index.add(np.full((30000, 32), v, np.float32))
        versions.append(index)
    voisin.write_index(versions[0], path)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        try:
            for i in range(12):
                voisin.write_index(versions[i % 2], path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = set()
    while not stop.is_set():
        index = voisin.read_index(path)
        assert index.ntotal == 30000
        seen.add(float(index.xb[0, 0]))
    t.join()
    assert not errors, errors
    assert seen <= {1.0, 2.0} and seen
