"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary data folder,
a free port on 127.0.0.1, trust authentication for loopback, stopped and deleted afterwards.

The server refuses to run as root, so as root it runs as the `postgres` system user (Debian's package
creates it). `make test` installs the package when it is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def postgres_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not candidates:
        found = shutil.which("initdb")
        if not found:
            raise RuntimeError("PostgreSQL server binaries not found: install Debian's postgresql package (make test does)")
        return Path(found).parent
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def throwaway_postgres(database: str = "stars", durable: bool = False):
    """Yields a postgresql:// URL of a fresh database; the server and its files are gone afterwards.
    Tests run without fsync (`durable=False`); the benchmark keeps PostgreSQL's default durability."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="stars-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _as_server_user([str(bin_dir / command[0]), *command[1:]]), check=True, capture_output=True, text=True
        )

    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c max_connections=200"
            + ("" if durable else " -c fsync=off -c synchronous_commit=off"),
        )
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
            )
        for _ in range(50):
            if not (data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
