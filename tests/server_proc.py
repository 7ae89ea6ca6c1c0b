"""Start ``voisin serve`` as a separate process on a free loopback port, for
the server tests (each test starts its own and stops it)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``voisin serve --path folder`` process on 127.0.0.1."""

    def __init__(self, folder: str, *args: str, port: int | None = None, timeout: float = 90.0):
        self.folder = str(folder)
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.timeout = timeout

    def start(self, timeout: float | None = None) -> "Server":
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("this server is already running")
        timeout = self.timeout if timeout is None else timeout
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
        # a file, not a pipe: a server (or Ray) that logs more than a pipe holds
        # would block on a pipe nobody reads
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voisin", "serve", "--path", self.folder, "--host", "127.0.0.1",
             "--port", str(self.port), *self.args],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"voisin serve exited ({self.proc.returncode}): {self.output()[-3000:]}")
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

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

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
        if self.proc is not None:
            self.log.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
