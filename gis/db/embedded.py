"""The embedded PostGIS cluster: a private PostgreSQL server started from the Debian binaries
inside the project's state directory.

Layout under ``<state_dir>/postgres``::

    data/          the cluster (owned by the server's OS user)
    run/           unix socket
    log/server.log server log
    cluster.json   what we know about it: port, user, database, server version
    password       the superuser password (0600), generated at initdb

PostgreSQL refuses to run as root; when we are root the server runs as the ``postgres`` system
user (created by Debian's postgresql-common) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gis.errors import DatabaseError, DatabaseSettingError

SERVER_OS_USER = "postgres"


@dataclass(frozen=True)
class ClusterStatus:
    """What ``ioc db status`` reports."""

    initialised: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    socket_dir: Path
    log_file: Path
    url: str | None
    problem: str | None = None

    def describe(self) -> str:
        if not self.initialised:
            return f"embedded PostGIS: not initialised (would live in {self.data_dir})"
        if self.problem:
            return f"embedded PostGIS: {self.problem}"
        state = f"running (pid {self.pid}) on 127.0.0.1:{self.port}" if self.running else "stopped"
        return (
            f"embedded PostGIS: {state}\n  data: {self.data_dir}\n  socket: {self.socket_dir}\n"
            f"  log: {self.log_file}" + (f"\n  url: {self.url}" if self.running else "")
        )


def find_pg_bindir(explicit: Path | None = None) -> Path:
    """The folder of the PostgreSQL server binaries (Debian keeps them versioned, off PATH)."""
    if explicit is not None:
        if not (explicit / "initdb").exists():
            raise DatabaseError(f"IOC_PG_BINDIR={explicit} holds no initdb binary.")
        return explicit
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: (
            float(p.parent.parent.name) if p.parent.parent.name.replace(".", "").isdigit() else 0
        ),
        reverse=True,
    )
    for initdb in candidates:
        extension_dir = Path("/usr/share/postgresql") / initdb.parent.parent.name / "extension"
        if any(extension_dir.glob("postgis.control")):
            return initdb.parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise DatabaseError(
        "No PostgreSQL server with PostGIS found: install the Debian packages "
        "postgresql and postgresql-15-postgis-3 (make install does it), or set IOC_DATABASE_URL."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedCluster:
    """A private PostGIS cluster in ``state_dir``.

    Parameters
    ----------
    state_dir
        The project's state directory; the cluster lives in ``state_dir / "postgres"``.
    db_name, db_user
        Database and superuser to create.
    port
        Port to listen on (127.0.0.1); ``None`` picks a free port at first start.
    bindir
        Folder of the server binaries; ``None`` finds it.
    """

    def __init__(
        self,
        state_dir: Path,
        db_name: str = "ioc",
        db_user: str = "ioc",
        port: int | None = None,
        bindir: Path | None = None,
    ) -> None:
        self.root = Path(state_dir).absolute() / "postgres"
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_dir = self.root / "log"
        self.log_file = self.log_dir / "server.log"
        self.meta_file = self.root / "cluster.json"
        self.password_file = self.root / "password"
        self.db_name = db_name
        self.db_user = db_user
        self.requested_port = port
        self._bindir = bindir

    # -- helpers ---------------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        if self._bindir is None or not (self._bindir / "initdb").exists():
            self._bindir = find_pg_bindir(self._bindir)
        return self._bindir

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam(SERVER_OS_USER)
        except KeyError as exc:
            raise DatabaseError(
                f"Running as root but the system user '{SERVER_OS_USER}' does not exist; "
                "install the Debian postgresql package (make install) to create it."
            ) from exc
        return ["runuser", "-u", SERVER_OS_USER, "--"]

    def _chown_to_server_user(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(SERVER_OS_USER)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, args: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                self._as_server_user() + args,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DatabaseError(f"{what} did not finish within {timeout:.0f} s.") from exc
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {proc.returncode}"
            raise DatabaseError(f"{what} failed: {tail} (log: {self.log_file})")
        return proc

    def _read_meta(self) -> dict:
        try:
            return json.loads(self.meta_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            raise DatabaseError(f"Cannot read {self.meta_file}: {exc}.") from exc

    def _write_meta(self, meta: dict) -> None:
        tmp = self.meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(self.meta_file)

    def _password(self) -> str:
        return self.password_file.read_text().strip()

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            first = pid_file.read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        except PermissionError:
            return None
        try:
            return int(first)
        except ValueError:
            return None

    # -- state -----------------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return self._read_meta().get("initialised") is True

    def url(self, database: str | None = None) -> str:
        """libpq URI of the running cluster (usable by psql and GDAL)."""
        meta = self._read_meta()
        if not meta.get("initialised"):
            raise DatabaseError(
                f"The embedded cluster in {self.root} is not initialised; run `ioc db up`."
            )
        return (
            f"postgresql://{quote(self.db_user)}:{quote(self._password(), safe='')}"
            f"@127.0.0.1:{meta['port']}/{database or self.db_name}"
        )

    def status(self) -> ClusterStatus:
        meta = self._read_meta()
        port = meta.get("port")
        common = dict(data_dir=self.data_dir, socket_dir=self.socket_dir, log_file=self.log_file)
        if not meta.get("initialised"):
            problem = None
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                problem = (
                    f"half-initialised cluster in {self.data_dir} (initdb did not complete); "
                    f"remove {self.root} and run `ioc db up` again"
                )
                return ClusterStatus(True, False, None, port, url=None, problem=problem, **common)
            return ClusterStatus(False, False, None, port, url=None, **common)
        pid = self._postmaster_pid()
        if pid is None:
            return ClusterStatus(True, False, None, port, url=None, **common)
        if not _pid_alive(pid):
            problem = (
                f"crashed: {self.data_dir}/postmaster.pid names pid {pid}, which is not running; "
                "run `ioc db up --recover` to restart it (PostgreSQL replays its WAL)"
            )
            return ClusterStatus(True, False, pid, port, url=None, problem=problem, **common)
        return ClusterStatus(True, True, pid, port, url=self.url(), **common)

    # -- lifecycle -------------------------------------------------------------------------
    def _check_state_dir(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise DatabaseSettingError(
                f"The state directory {self.root.parent} is not writable ({exc.strerror}); "
                "set IOC_STATE_DIR to a writable folder."
            ) from exc
        if os.geteuid() == 0:
            # the server user must be able to reach its folders through the state directory
            for parent in [self.root, *self.root.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    if parent in (self.root, self.root.parent):
                        os.chmod(parent, mode | 0o011)
                    else:
                        raise DatabaseError(
                            f"The folder {parent} is not searchable by the '{SERVER_OS_USER}' user; "
                            "choose an IOC_STATE_DIR outside it."
                        )

    def initialise(self) -> None:
        """initdb into the state directory (once)."""
        self._check_state_dir()
        if self.initialised:
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DatabaseError(
                f"Found a half-initialised cluster in {self.data_dir} (initdb did not complete); "
                f"remove {self.root} and run `ioc db up` again."
            )
        for folder in (self.data_dir, self.socket_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self._chown_to_server_user(self.data_dir, self.socket_dir, self.log_dir)
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password + "\n")
        os.chmod(self.password_file, 0o600)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o644)  # read once by initdb as the server user, then removed
        try:
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.db_user,
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_meta(
            {
                "initialised": True,
                "port": self.requested_port,
                "user": self.db_user,
                "database": self.db_name,
                "bindir": str(self.bindir),
            }
        )

    def start(self, recover: bool = False) -> None:
        """Start the server if it is not running. A crashed cluster is reported, not reused,
        unless ``recover`` is set."""
        status = self.status()
        if status.problem and "half-initialised" in status.problem:
            raise DatabaseError(status.problem[0].upper() + status.problem[1:] + ".")
        if status.running:
            return
        if status.problem:
            if not recover:
                raise DatabaseError("The embedded cluster " + status.problem + ".")
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        meta = self._read_meta()
        port = self.requested_port or meta.get("port")
        if port is None:
            port = free_port()
        elif port_in_use(port):
            if self.requested_port:
                raise DatabaseSettingError(
                    f"Port {port} on 127.0.0.1 is already in use by another program; "
                    "choose another IOC_DB_PORT or leave it unset for a free port."
                )
            port = free_port()
        meta["port"] = port
        self._write_meta(meta)
        self._chown_to_server_user(self.socket_dir, self.log_dir)
        options = f"-p {port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        try:
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                "Starting the embedded PostgreSQL server",
                timeout=90,
            )
        except DatabaseError as exc:
            hint = self._log_tail()
            raise DatabaseError(f"{exc}{' — ' + hint if hint else ''}") from exc

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = [
                line
                for line in self.log_file.read_text(errors="replace").splitlines()
                if line.strip()
            ]
            for line in reversed(lines[-20:]):
                if "FATAL" in line or "ERROR" in line:
                    return line.split("FATAL:")[-1].split("ERROR:")[-1].strip()
        return ""

    def stop(self) -> bool:
        """Stop the server cleanly; returns whether one was running."""
        status = self.status()
        if not status.running:
            return False
        try:
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                "Stopping the embedded PostgreSQL server",
                timeout=90,
            )
        except DatabaseError:
            if status.pid and _pid_alive(status.pid):
                os.kill(status.pid, signal.SIGTERM)
                for _ in range(100):
                    if not _pid_alive(status.pid):
                        break
                    time.sleep(0.1)
                else:
                    raise
        return True

    def ensure_database(self) -> None:
        """Create the database and the extensions if missing."""
        import psycopg

        admin_url = self.url(database="postgres")
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.db_name,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{self.db_name}"')
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Cannot prepare database '{self.db_name}' in the embedded cluster: {exc}".strip()
            ) from exc
