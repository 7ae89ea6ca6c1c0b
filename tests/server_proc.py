"""Start ``voisin serve`` as a separate process on a free loopback port, for
the server tests (each test starts its own and stops it)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``voisin serve --path folder`` process on 127.0.0.1."""

    def __init__(self, folder: str, *args: str, port: int | None = None):
        self.folder = str(folder)
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> "Server":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voisin", "serve", "--path", self.folder, "--host", "127.0.0.1",
             "--port", str(self.port), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"voisin serve exited ({self.proc.returncode}): "
                                     f"{self.proc.stderr.read().decode()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError("voisin serve did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(20)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (the database is closed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
