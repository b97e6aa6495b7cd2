"""A throw-away PostgreSQL cluster for the tests: initdb into a temporary folder, a free port on 127.0.0.1, stopped
and removed at the end.

The server binaries are Debian's `postgresql` package (.ci/run installs it): found on PATH or under
/usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so when the tests run as root the cluster
runs as the unprivileged `postgres` user the package creates (through `runuser`), in a folder it owns. The cluster
listens on 127.0.0.1 only and trusts its superuser `glider` there (no password); other roles need theirs. It lives
as long as the test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.net import free_port

USER = "glider"  # the cluster's superuser, which the tests connect as
SERVICE_USER = "postgres"  # the OS user the server runs as when the tests run as root


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (apt-get install postgresql)."""


def bin_dir() -> Path:
    """The folder of initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0)
    if versions:
        return versions[-1].parent
    raise PostgresUnavailable("PostgreSQL's initdb was not found: install Debian's `postgresql` package.")


class PostgresCluster:
    """One running cluster; `url(name)` gives a SQLAlchemy URL (psycopg 3) of a database in it."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="glider-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_service = os.geteuid() == 0
        if self._as_service:  # the server may not run as root: hand it a folder of its own
            shutil.chown(self.root, user=SERVICE_USER)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync"])
        # The tests' superuser is trusted; any other role must give its password, so a wrong one can be tested.
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"local all {USER} trust\nhost all {USER} 127.0.0.1/32 trust\n"
                       "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8")
        if self._as_service:
            shutil.chown(hba, user=SERVICE_USER)
        # fsync off and a small shared memory: a test cluster, never a copy of anyone's data. A deadlock is found
        # after 100 ms instead of 1 s (the store's retry test makes one on purpose).
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c deadlock_timeout=100ms")
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                   "-t", "60", "start"])

    def _run(self, command: list[str]) -> None:
        if self._as_service:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "glider", *, template: str | None = None) -> str:
        """A new database, empty or (template: a database's name) a copy of `template`; its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            for _ in range(20):  # the server may take a moment to let go of its files
                shutil.rmtree(self.root, ignore_errors=True)
                if not self.root.exists():
                    break
                time.sleep(0.1)
