"""A throwaway PostgreSQL for integration tests (fixtures ``postgres_url`` and ``pg_db_url``).

``postgres_url`` (session scope) runs ``initdb`` in a temp dir, starts the server on
127.0.0.1 on a free port (unix socket in the temp dir, ``fsync=off``), waits until it takes
connections, creates a database and yields its SQLAlchemy URL; at the end it stops the server
(``pg_ctl stop -m fast``) and removes the dir. ``pg_db_url`` (function scope) gives each test
a fresh, empty database on that server and drops it afterwards.

The binaries come from ``$PATH`` or ``/usr/lib/postgresql/<version>/bin`` (newest first).
initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user
(``runuser``). When they are missing the tests skip with a reason, except under ``CI=true``,
where they fail. Use from a test module with ``from pgserver import pg_db_url, postgres_url``
(pytest finds fixtures imported into the module).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from rca.bench.promserver import free_port

__all__ = ["PgServer", "find_pg_binary", "pg_db_url", "postgres_url", "require_postgres", "start_postgres"]

_USER = "rca"
_START_TIMEOUT_S = 30.0


def find_pg_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl, postgres) from ``$PATH`` or the newest Debian install, or None."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: [int(p) for p in Path(d).parent.name.split(".") if p.isdigit()], reverse=True)
    for d in dirs:
        exe = Path(d) / name
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    return shutil.which(name)


def _unavailable(msg: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg} but CI=true: .ci/run must install it")
    pytest.skip(msg)


def require_postgres() -> dict[str, str]:
    """Paths of initdb, pg_ctl and postgres; skip without them (fail under ``CI=true``)."""
    bins = {n: find_pg_binary(n) for n in ("initdb", "pg_ctl", "postgres")}
    missing = [n for n, p in bins.items() if p is None]
    if missing:
        _unavailable(f"PostgreSQL {', '.join(missing)} not found (Debian: apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no `postgres` user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            _unavailable("running as root and `runuser` (util-linux) is missing")
    return bins  # type: ignore[return-value]


@dataclass
class PgServer:
    """A started server: ``port``, temp ``root`` (data, socket, log) and the admin URL."""

    root: Path
    port: int
    pg_ctl: str
    timings: dict[str, float]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown; SIGKILL of the postmaster if that fails) and remove
        the temp dir."""
        try:
            _run([self.pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "20"], timeout=30)
        except (subprocess.SubprocessError, OSError):
            pid = _postmaster_pid(self.data)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=timeout, check=True)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def start_postgres(bins: dict[str, str]) -> PgServer:
    """initdb + start on a free 127.0.0.1 port; returns once it takes connections. The caller
    stops it."""
    import psycopg

    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="rca-pg-"))  # not under pytest's 0700 tmp: postgres must enter it
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    os.chmod(root, 0o700)
    server: PgServer | None = None
    try:
        _run([bins["initdb"], "-D", str(root / "data"), "-A", "trust", "-U", _USER, "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], timeout=120)
        t1 = time.perf_counter()
        conf = (f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n"
                "shared_buffers = 32MB\n")
        last = ""
        for _ in range(3):  # a free port can be taken between picking and binding it
            port = free_port()
            auto = root / "data" / "postgresql.auto.conf"
            # written by root, read by postgres: keep it readable (the data dir itself is 0700)
            auto.write_text(conf + f"port = {port}\n")
            if os.geteuid() == 0:
                os.chown(auto, pw.pw_uid, pw.pw_gid)
            server = PgServer(root, port, bins["pg_ctl"], {"initdb_s": t1 - t0})
            try:
                _run([bins["pg_ctl"], "start", "-D", str(root / "data"), "-l", str(root / "server.log"),
                      "-w", "-t", str(int(_START_TIMEOUT_S))], timeout=_START_TIMEOUT_S + 10)
                break
            except subprocess.CalledProcessError as e:
                last = f"{e.stderr}\n{server.log()}"
                server = None
        if server is None:
            raise RuntimeError(f"PostgreSQL did not start: {last}")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:  # pg_ctl -w waited for "ready"; check that TCP really answers
            try:
                with psycopg.connect(host="127.0.0.1", port=server.port, user=_USER, dbname="postgres",
                                     connect_timeout=2) as conn:
                    conn.execute("select 1")
                break
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {server.port} takes no connections: {e}\n"
                                       f"{server.log()}") from e
                time.sleep(0.1)
        server.timings["start_s"] = time.perf_counter() - t1
        return server
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise


def _admin(url: str, sql: str) -> None:
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    server = start_postgres(require_postgres())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PgServer) -> str:
    """SQLAlchemy URL of a database ``rca`` on a throwaway PostgreSQL (shared by the session)."""
    _admin(postgres_server.url(), "CREATE DATABASE rca")
    return postgres_server.url("rca")


@pytest.fixture()
def pg_db_url(postgres_server: PgServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database of its own for one test; dropped after it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = postgres_server.url()
    _admin(admin, f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
