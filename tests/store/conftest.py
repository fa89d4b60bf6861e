"""Database fixtures for the store tests.

- ``postgres_cluster`` (session): a throw-away PostgreSQL cluster in a temp
  directory, listening on 127.0.0.1 on a free port, trust authentication,
  fsync off (the tests kill clients, never the server). As root the server
  runs as the ``postgres`` OS user (postgres refuses root). Stopped at the end
  by its PID (SIGINT = fast shutdown, SIGKILL after 10 s). Skips the
  PostgreSQL variants when the binaries are missing (Debian: ``postgresql``).
- ``backend``: "sqlite" or "postgresql"; tests taking ``database_url`` or
  ``store`` run once per backend.
- ``database_url``: a fresh, empty database: a SQLite file in tmp_path, or a
  new database in the cluster.
- ``store``: ``open_store(database_url)``, closed after the test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from boomerang.store import CallbackMethod, NewCallbackJob, Store, open_store

LOOPBACK = "127.0.0.1"
POSTGRES_PACKAGE = "postgresql"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
BACKENDS = ["sqlite", "postgresql"]
NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PostgresCluster:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _postgres_bin_directory() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda path: int(Path(path).parts[-3].split(".")[0]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_directory = _postgres_bin_directory()
    if bin_directory is None or not (bin_directory / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found; install the Debian package "
                    f"'{POSTGRES_PACKAGE}' (apt-get install {POSTGRES_PACKAGE})")
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' OS user to run the server as")
        run_as = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="boomerang-pg-"))
    if run_as is not None:
        shutil.chown(directory, user=run_as)
    data_directory = directory / "data"
    user = "boomerang"
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [str(bin_directory / "initdb"), "-D", str(data_directory), "-U", user,
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
            user=run_as, cwd=directory, check=True, timeout=60,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        log_file = open(directory / "server.log", "wb")  # noqa: SIM115 (closed below)
        for _ in range(3):  # the free port may be taken between probe and bind
            port = _free_tcp_port()
            process = subprocess.Popen(
                [str(bin_directory / "postgres"), "-D", str(data_directory),
                 "-p", str(port), "-c", f"listen_addresses={LOOPBACK}",
                 "-c", f"unix_socket_directories={directory}",
                 "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                user=run_as, cwd=directory, stdout=log_file, stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + START_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                if _accepts_connections(port):
                    break
                time.sleep(0.05)
            if process.poll() is None and _accepts_connections(port):
                break
            _stop(process)
            process = None
        log_file.close()
        if process is None:
            log_text = (directory / "server.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"throw-away PostgreSQL did not start:\n{log_text}")
        yield PostgresCluster(host=LOOPBACK, port=port, user=user)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


async def create_postgres_database(cluster: PostgresCluster) -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(host=cluster.host, port=cluster.port,
                                       user=cluster.user, database="postgres", timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return cluster.url(name)


def new_job(**changes: object) -> NewCallbackJob:
    """A due callback job for extension 101; keyword arguments override."""
    fields: dict[str, object] = {
        "correlation_id": "story-1", "owner_extension": "101",
        "target_number": "+48600100200", "method": CallbackMethod.CALLER, "due_at": NOW,
        "flow": "roaming", "component_id": "cb", "trunk": "carrier",
        "caller_id": "+48221234567",
    }
    fields.update(changes)
    return NewCallbackJob(**fields)  # type: ignore[arg-type]


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def job_factory() -> Callable[..., NewCallbackJob]:
    return new_job


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'boomerang.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return await create_postgres_database(cluster)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()
