"""`ioc db backup` / `ioc db restore` on the real embedded PostgreSQL: a round trip into a fresh
database keeps every table's row count and the parcels' geometry checksum; a full disk or a
read-only folder gives one sentence and leaves earlier backups intact; retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from gis.db import migrate
from gis.db.session import make_engine

pytestmark = [pytest.mark.postgis]

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CADASTRE = REPO / "data" / "land" / "sample_cadastre.gpkg"


@pytest.fixture
def cluster_db(embedded_cluster, database_url):
    """Factory of scratch databases in the embedded cluster (dropped afterwards)."""
    if embedded_cluster is None:
        pytest.skip("needs the embedded cluster to create scratch databases")
    admin = make_engine(embedded_cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(create: bool = True) -> str:
        name = "bk_" + uuid.uuid4().hex[:10]
        made.append(name)
        if create:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return embedded_cluster.url(name)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2")
            ).all()
            return {
                f"{s}.{t}": conn.execute(sa.text(f'SELECT count(*) FROM "{s}"."{t}"')).scalar_one()
                for s, t in tables
            }
    finally:
        engine.dispose()


def _parcels_md5(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT md5(string_agg(encode(ST_AsBinary(geom), 'hex') || land_use_code, ',' ORDER BY id)) "
                    "FROM parcels"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def _ioc(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def source_db(cluster_db, tmp_path):
    """A database with the reference admin units, the sample cadastre, a job run, a stored
    digest; and a state folder with a model registry."""
    from gis.admin_units import load_reference_units
    from gis.cadastre import import_cadastre

    url = cluster_db()
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        load_reference_units(engine, REPO / "data" / "admin")
        import_cadastre(engine, SAMPLE_CADASTRE)
        with engine.begin() as conn:
            run_id = conn.execute(
                sa.text(
                    "INSERT INTO job_runs (job, status, finished_at, host, pid, counts) "
                    "VALUES ('digest', 'succeeded', now(), 'h', 1, '{\"day\": \"2025-08-04\"}') RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO stored_digests (day, html, pdf, data, run_id) "
                    "VALUES ('2025-08-04', '<p>Bản tin ngày 4/8</p>', '%PDF-1.4 x', '{\"date\": \"2025-08-04\"}', :r)"
                ),
                {"r": run_id},
            )
    finally:
        engine.dispose()
    state = tmp_path / "state"
    registry = state / "nlp-models" / "20250101-base"
    registry.mkdir(parents=True)
    (state / "nlp-models" / "registry.json").write_text(
        '{"current": "20250101-base"}', encoding="utf-8"
    )
    (registry / "sentiment-20250101-base.joblib").write_bytes(os.urandom(50_000))
    return url, state


def test_round_trip_into_a_fresh_database(source_db, cluster_db, tmp_path):
    url, state = source_db
    before = _counts(url)
    assert before["public.parcels"] > 0 and before["public.admin_units"] > 0
    md5 = _parcels_md5(url)
    archive = tmp_path / "out" / "nightly.iocbak"
    out = _ioc(
        {"IOC_DATABASE_URL": url, "IOC_STATE_DIR": str(state)},
        "db",
        "backup",
        "--out",
        str(archive),
    )
    assert out.returncode == 0, out.stderr
    assert archive.is_file() and not list(archive.parent.glob(".*"))  # no temporary left over
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {
        "manifest.json",
        "database.dump",
        "files/nlp-models/registry.json",
        "files/nlp-models/20250101-base/sentiment-20250101-base.joblib",
    } <= set(names)

    target = cluster_db(create=False)  # the restore creates it
    new_state = tmp_path / "restored-state"
    out = _ioc(
        {"IOC_DATABASE_URL": url, "IOC_STATE_DIR": str(new_state)},
        "db",
        "restore",
        str(archive),
        "--database-url",
        target,
    )
    assert out.returncode == 0, out.stderr
    assert "match the backup" in out.stdout
    assert _counts(target) == before
    assert _parcels_md5(target) == md5
    joblib = "nlp-models/20250101-base/sentiment-20250101-base.joblib"
    assert (
        hashlib.sha256((new_state / joblib).read_bytes()).digest()
        == hashlib.sha256((state / joblib).read_bytes()).digest()
    )
    engine = make_engine(target)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT pdf FROM stored_digests")).scalar_one()
                == b"%PDF-1.4 x"
            )
            assert conn.execute(
                sa.text("SELECT version_num FROM alembic_version")
            ).scalar_one() == migrate.current_revision(url)
    finally:
        engine.dispose()

    # a database that is not empty is refused (user error), unless --force
    again = _ioc(
        {"IOC_DATABASE_URL": url, "IOC_STATE_DIR": str(tmp_path / "s3")},
        "db",
        "restore",
        str(archive),
        "--database-url",
        target,
    )
    assert again.returncode == 2 and "is not empty" in again.stderr and "--force" in again.stderr
    forced = _ioc(
        {"IOC_DATABASE_URL": url, "IOC_STATE_DIR": str(tmp_path / "s3")},
        "db",
        "restore",
        str(archive),
        "--database-url",
        target,
        "--force",
    )
    assert forced.returncode == 0, forced.stderr
    assert _counts(target) == before

    # not a backup: one sentence, exit 2
    bad = tmp_path / "bad.iocbak"
    bad.write_bytes(b"not a tar")
    out = _ioc({"IOC_DATABASE_URL": url}, "db", "restore", str(bad), "--database-url", target)
    assert out.returncode == 2 and "is not an ioc-monitor backup" in out.stderr


def _mount_tmpfs(path: Path, size: str, readonly: bool = False) -> None:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")


def test_full_disk_and_read_only_folder_keep_earlier_backups(source_db, tmp_path):
    from gis.db.backup import BackupError, create_backup, read_manifest

    url, state = source_db
    probe = create_backup(url, tmp_path / "probe.iocbak")  # database only: its size
    size_kb = probe.size // 1024
    disk = tmp_path / "disk"
    # the dump is written next to the archive before being packed: a backup needs twice its size
    _mount_tmpfs(disk, f"{int(size_kb * 2.5) + 16}k")
    try:
        first = create_backup(url, disk / "ioc-20250801T000000Z.iocbak")
        digest = hashlib.sha256(first.path.read_bytes()).hexdigest()
        with pytest.raises(
            BackupError, match="no space left on the device; earlier backups are untouched"
        ):
            create_backup(url, disk / "ioc-20250802T000000Z.iocbak")
        assert sorted(p.name for p in disk.iterdir()) == ["ioc-20250801T000000Z.iocbak"]
        assert hashlib.sha256(first.path.read_bytes()).hexdigest() == digest
        assert read_manifest(first.path)["tables"]["public.parcels"] > 0
        # the CLI says it in one line and exits non-zero
        out = _ioc(
            {"IOC_DATABASE_URL": url, "IOC_STATE_DIR": str(state)},
            "db",
            "backup",
            "--out",
            str(disk / "ioc-20250803T000000Z.iocbak"),
        )
        assert out.returncode == 1 and out.stderr.strip().startswith(
            "error: Cannot write the backup"
        )
        assert len(out.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", str(disk)], check=False)

    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "1m", readonly=True)
    try:
        with pytest.raises(BackupError, match="not writable|read-only|permission denied"):
            create_backup(url, ro / "ioc-20250804T000000Z.iocbak")
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_retention_keeps_daily_and_weekly(tmp_path):
    from gis.db.backup import prune_backups

    start = dt.datetime(2025, 8, 31, 19, 0, tzinfo=dt.UTC)  # 02:00 in Ha Noi, 1 September
    made = []
    for i in range(60):  # one nightly backup a day for 60 days, plus a second one on the newest day
        when = start - dt.timedelta(days=i)
        made.append(tmp_path / f"ioc-{when:%Y%m%dT%H%M%SZ}.iocbak")
    made.append(tmp_path / f"ioc-{start - dt.timedelta(hours=2):%Y%m%dT%H%M%SZ}.iocbak")
    for p in made:
        p.write_bytes(b"x")
    (tmp_path / "manual-before-upgrade.iocbak").write_bytes(b"x")  # not ours to delete
    removed = prune_backups(tmp_path, keep_daily=7, keep_weekly=4)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "manual-before-upgrade.iocbak" in left
    kept = [p for p in made if p.exists()]
    local_days = sorted(
        {
            (
                dt.datetime.strptime(p.name[4:20], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                + dt.timedelta(hours=7)
            ).date()
            for p in kept
        },
        reverse=True,
    )
    # the 7 newest days, and the newest of each of the 4 newest ISO weeks (some coincide)
    assert local_days[:7] == [dt.date(2025, 9, 1) - dt.timedelta(days=i) for i in range(7)]
    weeks = {d.isocalendar()[:2] for d in local_days}
    assert len(weeks) == 4 and len(kept) == len(local_days) <= 7 + 4
    assert len(removed) == len(made) - len(kept)
    assert start.strftime("ioc-%Y%m%dT%H%M%SZ.iocbak") in left  # the newest of the day wins
