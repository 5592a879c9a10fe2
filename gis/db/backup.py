"""Backups of everything stored: the database (``pg_dump`` custom format) and the state folders
(model registries) in ONE archive, and restoring it into an empty database.

Archive (``.iocbak``, an uncompressed tar; the dump is compressed by pg_dump)::

    manifest.json      format, created, server and pg_dump versions, every table's row count,
                       the parcels checksum, sha256 and size of every member
    database.dump      pg_dump -Fc of the database
    files/<name>/...   each included folder (e.g. files/nlp-models/registry.json)

Written to a hidden temporary name in the target folder, fsynced, then renamed: a full disk or
an unwritable folder leaves no partial archive and never touches earlier backups. The row
counts and the checksum are taken in the very snapshot pg_dump dumps (``--snapshot``), so the
restore can prove the round trip: after ``pg_restore`` it recounts and compares.

``pg_dump``/``pg_restore`` are the Debian binaries of the server's major version
(``/usr/lib/postgresql/<major>/bin``), as for the embedded cluster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import text

from gis.db.session import make_engine, redact
from gis.errors import DatabaseError, IocError

FORMAT = "ioc-monitor-backup/1"
BACKUP_NAME_RE = re.compile(r"^ioc-(\d{8}T\d{6}Z)\.iocbak$")
PARCELS_CHECKSUM_SQL = (
    "SELECT count(*) AS n, md5(coalesce(string_agg(md5(ST_AsBinary(geom)), '' ORDER BY id), '')) "
    "AS md5 FROM parcels"
)


class BackupError(IocError, RuntimeError):
    """A backup or restore that cannot be done (one sentence; nothing half-written)."""

    exit_code = 1


class BackupInputError(BackupError):
    """The archive or the target given by the user is not usable (exit 2)."""

    exit_code = 2


class BackupSettings(BaseSettings):
    """Nightly backups (env prefix ``IOC_BACKUP_``)."""

    model_config = SettingsConfigDict(env_prefix="IOC_BACKUP_", env_file=".env", extra="ignore")

    dir: Path | None = Field(default=None, description="Where backups go; unset = <state>/backups.")
    keep_daily: int = Field(
        default=7, ge=0, description="Newest backup of each of the last N days."
    )
    keep_weekly: int = Field(
        default=4, ge=0, description="Newest backup of each of the last M weeks."
    )
    folders: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["nlp-models", "land-models"],
        description="State sub-folders (model registries) put in the archive when they exist.",
    )

    @field_validator("folders", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def folder(self, state_dir: Path) -> Path:
        return Path(self.dir) if self.dir else Path(state_dir) / "backups"

    def include_dirs(self, state_dir: Path) -> dict[str, Path]:
        return {
            name: Path(state_dir) / name
            for name in self.folders
            if (Path(state_dir) / name).is_dir()
        }


@dataclass
class BackupInfo:
    path: Path
    size: int
    tables: dict[str, int]
    parcels_md5: str | None
    manifest: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ helpers


def _libpq_env(database_url: str) -> tuple[str, dict[str, str]]:
    """(URL without password, environment with PGPASSWORD): no password on command lines."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    if parts.password:
        from urllib.parse import unquote

        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.replace(":" + parts.password + "@", "@")
        database_url = urlunsplit(parts._replace(netloc=netloc))
    return database_url, env


def _server_major(conn) -> int:
    return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def client_binary(name: str, server_major: int) -> Path:
    """``pg_dump``/``pg_restore`` of the server's major version (Debian keeps them versioned)."""
    candidate = Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")
    if candidate.exists():
        return candidate
    newer = sorted(
        (
            p
            for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
            if p.parent.parent.name.isdigit() and int(p.parent.parent.name) >= server_major
        ),
        key=lambda p: int(p.parent.parent.name),
    )
    if newer:
        return newer[0]
    raise BackupError(
        f"No {name} for PostgreSQL {server_major} (looked in /usr/lib/postgresql/*/bin): "
        f"install the Debian package postgresql-client-{server_major}."
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_counts(conn) -> dict[str, int]:
    """Exact row count of every user table (schema-qualified names)."""
    names = conn.execute(
        text("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY schemaname, relname")
    ).all()
    out = {}
    for schema, table in names:
        out[f"{schema}.{table}"] = int(
            conn.execute(text(f'SELECT count(*) FROM "{schema}"."{table}"')).scalar_one()
        )
    return out


def parcels_checksum(conn) -> str | None:
    if conn.execute(text("SELECT to_regclass('public.parcels')")).scalar() is None:
        return None
    row = conn.execute(text(PARCELS_CHECKSUM_SQL)).one()
    return f"{row.n}:{row.md5}"


def _disk_error(exc: OSError, where: Path) -> BackupError:
    if exc.errno == errno.ENOSPC:
        why = "no space left on the device"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied (the folder is not writable)"
    else:
        why = exc.strerror or str(exc)
    return BackupError(f"Cannot write the backup in {where}: {why}; earlier backups are untouched.")


# ------------------------------------------------------------------------------ backup


def create_backup(
    database_url: str,
    out: Path,
    state_dir: Path | None = None,
    extra_dirs: dict[str, Path] | None = None,
) -> BackupInfo:
    """Write one archive of the database and ``extra_dirs`` ({name: folder}) to ``out``."""
    out = Path(out)
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, folder) from None
    if not os.access(folder, os.W_OK):
        raise BackupError(
            f"Cannot write the backup in {folder}: permission denied (the folder is not "
            "writable); earlier backups are untouched."
        )
    if out.exists():
        raise BackupInputError(f"{out} already exists; choose another --out.")
    engine = make_engine(database_url, connect_args={"connect_timeout": 10})
    work = None
    partial = folder / f".{out.name}.partial-{os.getpid()}"
    try:
        work = Path(tempfile.mkdtemp(prefix=".ioc-backup-", dir=folder))
        dump = work / "database.dump"
        # one snapshot (repeatable read) for the counts, the checksum and the dump
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            major = _server_major(conn)
            server_version = conn.execute(text("SHOW server_version")).scalar_one()
            pg_dump = client_binary("pg_dump", major)
            counts = table_counts(conn)
            checksum = parcels_checksum(conn)
            revision = None
            if "public.alembic_version" in counts:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            url, env = _libpq_env(database_url)
            proc = subprocess.run(
                [
                    str(pg_dump),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                    "--no-password",
                    f"--dbname={url}",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=6 * 3600,
            )
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()
            if any("No space left" in line for line in err):
                raise _disk_error(OSError(errno.ENOSPC, "No space left on device"), folder)
            raise BackupError(f"pg_dump failed: {err[-1] if err else proc.returncode}")
        dump_version = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True
        ).stdout.strip()
        members = [{"name": "database.dump", "size": dump.stat().st_size, "sha256": _sha256(dump)}]
        files: list[tuple[Path, str]] = []
        for name, src in sorted((extra_dirs or {}).items()):
            for path in sorted(Path(src).rglob("*")):
                if path.is_file() and not path.is_symlink():
                    arc = f"files/{name}/{path.relative_to(src).as_posix()}"
                    files.append((path, arc))
                    members.append(
                        {"name": arc, "size": path.stat().st_size, "sha256": _sha256(path)}
                    )
        manifest = {
            "format": FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "database": redact(database_url),
            "server_version": server_version,
            "pg_dump": dump_version,
            "schema_revision": revision,
            "tables": counts,
            "parcels_checksum": checksum,
            "folders": sorted((extra_dirs or {}).keys()),
            "members": members,
        }
        data = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
        with open(partial, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            info.mtime = int(dt.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname="database.dump")
            for path, arc in files:
                tar.add(path, arcname=arc)
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
        return BackupInfo(out, out.stat().st_size, counts, checksum, manifest)
    except OSError as exc:
        raise _disk_error(exc, folder) from None
    except subprocess.TimeoutExpired:
        raise BackupError("pg_dump did not finish within 6 hours.") from None
    except BackupError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "psycopg")):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise DatabaseError(f"Backup of {redact(database_url)} failed: {reason}") from exc
        raise
    finally:
        engine.dispose()
        with contextlib.suppress(OSError):
            partial.unlink()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------ restore


def read_manifest(archive: Path) -> dict[str, Any]:
    archive = Path(archive)
    if not archive.is_file():
        raise BackupInputError(
            f"{archive} does not exist." if not archive.exists() else f"{archive} is not a file."
        )
    try:
        with tarfile.open(archive, mode="r") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read().decode("utf-8")) if member else None
    except (tarfile.TarError, KeyError, ValueError, OSError):
        raise BackupInputError(
            f"{archive} is not an ioc-monitor backup (not a tar archive with a manifest.json)."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupInputError(
            f"{archive} is not an ioc-monitor backup (format {FORMAT} expected)."
        )
    return manifest


def _user_tables(conn) -> list[str]:
    return [
        f"{s}.{t}"
        for s, t in conn.execute(
            text(
                "SELECT schemaname, relname FROM pg_stat_user_tables "
                "WHERE NOT (schemaname = 'public' AND relname = 'spatial_ref_sys')"
            )
        )
    ]


def _ensure_database(database_url: str) -> None:
    """Create the target database when the cluster does not have it yet."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name:
        raise BackupInputError("The restore target URL names no database (postgresql://.../NAME).")
    engine = make_engine(database_url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return
    except Exception as exc:  # noqa: BLE001 - inspected below
        if "does not exist" not in str(exc):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise DatabaseError(f"Cannot connect to {redact(database_url)}: {reason}") from exc
    finally:
        engine.dispose()
    admin = make_engine(
        urlunsplit(parts._replace(path="/postgres")),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 10},
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def _restore_order(pg_restore: Path, dump: Path, out: Path) -> Path:
    """The dump's table of contents with the rows of ``spatial_ref_sys`` (the pinned VN-2000
    SRIDs of migration 0005) restored before any other table's rows: the parcels' generated
    Web Mercator column is computed through them while the parcels are copied in."""
    proc = subprocess.run([str(pg_restore), "--list", str(dump)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"pg_restore cannot read the dump: {proc.stderr.strip()[:300]}")
    lines = proc.stdout.splitlines()
    srs = [ln for ln in lines if " TABLE DATA public spatial_ref_sys " in ln]
    rest = [ln for ln in lines if ln not in srs]
    first_data = next((i for i, ln in enumerate(rest) if " TABLE DATA " in ln), len(rest))
    out.write_text("\n".join(rest[:first_data] + srs + rest[first_data:]) + "\n", encoding="utf-8")
    return out


def restore_backup(
    archive: Path, database_url: str, state_dir: Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Restore ``archive`` into ``database_url`` (created when missing; must be empty unless
    ``force``) and its folders into ``state_dir``; verify counts and the parcels checksum."""
    archive = Path(archive)
    manifest = read_manifest(archive)
    _ensure_database(database_url)
    engine = make_engine(database_url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            present = _user_tables(conn)
            major = _server_major(conn)
        if present and not force:
            raise BackupInputError(
                f"{redact(database_url)} is not empty ({len(present)} tables, e.g. "
                f"{', '.join(sorted(present)[:3])}); restore into an empty database "
                "or pass --force to replace its contents."
            )
        targets = {}
        for name in manifest.get("folders", []):
            if state_dir is None:
                break
            dest = Path(state_dir) / name
            if dest.exists() and any(dest.iterdir()) and not force:
                raise BackupInputError(f"{dest} is not empty; pass --force to replace it.")
            targets[name] = dest
        pg_restore = client_binary("pg_restore", major)
        with tempfile.TemporaryDirectory(prefix="ioc-restore-") as tmp:
            work = Path(tmp)
            with tarfile.open(archive, mode="r") as tar:
                tar.extractall(work, filter="data")
            for member in manifest["members"]:
                path = work / member["name"]
                if not path.is_file() or _sha256(path) != member["sha256"]:
                    raise BackupError(
                        f"{archive}: member {member['name']} is missing or corrupt "
                        "(checksum differs from the manifest)."
                    )
            if force and present:
                with engine.begin() as conn:
                    schemas = sorted({t.split(".", 1)[0] for t in present} - {"public"})
                    for schema in schemas:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    conn.execute(text("DROP SCHEMA public CASCADE"))
                    conn.execute(text("CREATE SCHEMA public"))
            url, env = _libpq_env(database_url)
            order = _restore_order(pg_restore, work / "database.dump", work / "restore.list")
            proc = subprocess.run(
                [
                    str(pg_restore),
                    "--single-transaction",
                    "--no-owner",
                    "--no-privileges",
                    f"--use-list={order}",
                    "--no-password",
                    f"--dbname={url}",
                    str(work / "database.dump"),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=6 * 3600,
            )
            if proc.returncode != 0:
                err = [line for line in proc.stderr.strip().splitlines() if line.strip()]
                detail = next((line for line in err if "ERROR" in line), err[-1] if err else "")
                raise BackupError(
                    f"pg_restore failed, nothing was restored: {detail.strip()[:300]}"
                )
            for name, dest in targets.items():
                src = work / "files" / name
                if not src.exists():
                    continue
                staging = dest.with_name(f".{dest.name}.restoring")
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(src, staging)
                if dest.exists():
                    shutil.rmtree(dest)
                os.replace(staging, dest)
        with engine.connect() as conn:
            counts = table_counts(conn)
            checksum = parcels_checksum(conn)
        expected = manifest.get("tables", {})
        differ = {t: (n, counts.get(t)) for t, n in expected.items() if counts.get(t) != n}
        if differ or checksum != manifest.get("parcels_checksum"):
            raise BackupError(
                f"Restored, but the contents differ from the backup: "
                f"{differ or 'parcels checksum ' + str(checksum)}."
            )
        return {
            "database": redact(database_url),
            "tables": len(counts),
            "rows": sum(counts.values()),
            "parcels_checksum": checksum,
            "folders": sorted(targets),
            "created": manifest.get("created"),
            "schema_revision": manifest.get("schema_revision"),
        }
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ retention


def backup_time(path: Path) -> dt.datetime | None:
    m = BACKUP_NAME_RE.match(Path(path).name)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def prune_backups(
    folder: Path, keep_daily: int, keep_weekly: int, tz: str = "Asia/Ho_Chi_Minh"
) -> list[Path]:
    """Delete nightly archives (``ioc-<UTC stamp>.iocbak``) beyond the newest of each of the
    last ``keep_daily`` days and of each of the last ``keep_weekly`` ISO weeks (local time).
    Other files are never touched. Returns the deleted paths."""
    zone = ZoneInfo(tz)
    found = sorted(
        ((backup_time(p), p) for p in Path(folder).glob("ioc-*.iocbak") if backup_time(p)),
        reverse=True,
    )
    keep: set[Path] = set()
    days: list[dt.date] = []
    weeks: list[tuple[int, int]] = []
    for when, path in found:
        local = when.astimezone(zone).date()
        if local not in days and len(days) < keep_daily:
            days.append(local)
            keep.add(path)
        week = local.isocalendar()[:2]
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.append(week)
            keep.add(path)
    removed = []
    for _, path in found:
        if path not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
