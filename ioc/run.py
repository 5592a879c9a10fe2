"""``ioc run``: the long-running service (scheduled work + the API) and ``ioc jobs``.

    ioc run [--no-api] [--host H] [--port P] [--workers N]
    ioc jobs [--job NAME] [--limit N] [--json]      recorded runs, newest first
    ioc jobs schedule                               the configured jobs and their next turn
    ioc jobs run NAME                               run one job here and now (recorded 'manual')
    ioc jobs trigger NAME                           make a running service run it at once

The scheduled work runs on APScheduler's background threads in this process (crawls in child
processes, see :mod:`ioc.jobs`); the API is served by uvicorn in the same process (workers > 1:
uvicorn's worker processes, each building the app from :func:`api.app.app_from_environment`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("ioc.run")


class _Stop(BaseException):  # noqa: N818 - a signal, not an error
    """SIGTERM: leave the serving loop and shut down in order."""


def _app() -> Any:
    return click.get_current_context().find_root().obj


def _configure_logging(default_level: str) -> None:
    try:
        from ioc.logging import configure_logging
    except ImportError:
        logging.basicConfig(
            level=default_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return
    configure_logging(level=os.environ.get("IOC_LOG_LEVEL") or default_level)
    for noisy in (
        "alembic",
        "apscheduler.scheduler",
    ):  # their INFO lines say nothing an operator needs
        logging.getLogger(noisy).setLevel(logging.WARNING)


def check_schema(database_url: str) -> str:
    """The schema revision; refuse to run against a database the code does not match."""
    from alembic.script import ScriptDirectory

    from gis.db import migrate
    from gis.errors import DatabaseError

    current = migrate.current_revision(database_url)
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    if current != head:
        raise DatabaseError(
            f"The database schema is at revision {current or 'none'}, this code needs "
            f"{head}: run `ioc db migrate` (or `ioc db up`) first."
        )
    return current


class Service:
    """The scheduled side of ``ioc run``: settings, the job runner and the scheduler.

    Parameters
    ----------
    database_url, state_dir
        Where everything is stored.
    clock
        The runner's clock (tests inject one; the scheduler itself runs on real time).
    """

    def __init__(
        self,
        database_url: str,
        state_dir: Path,
        clock: Callable[[], dt.datetime] | None = None,
        schedule_settings: Any = None,
    ) -> None:
        from crawler.settings import CrawlSettings
        from gis.db.backup import BackupSettings
        from ioc.jobs import BODIES, Services, enabled_outlets
        from ioc.scheduler import JobRunner, ScheduleSettings, load_schedule

        self.database_url = database_url
        settings = schedule_settings or ScheduleSettings()
        crawl = CrawlSettings()
        public_url = ""
        with contextlib.suppress(Exception):
            from api.settings import ApiSettings

            public_url = ApiSettings().public_url()
        self.services = Services(
            database_url=database_url,
            state_dir=Path(state_dir),
            schedule=settings,
            crawl=crawl,
            backup=BackupSettings(),
            public_url=public_url,
        )
        crawl_on = "crawl" not in settings.disabled
        outlets = enabled_outlets(crawl) if crawl_on else []
        self.schedule = load_schedule(settings, outlets)
        self.services.schedule = self.schedule.settings
        from gis.db.session import make_engine

        self.engine = make_engine(
            database_url,
            pool_size=settings.workers * 2 + 2,
            max_overflow=10,
            connect_args={"connect_timeout": 5},
        )
        self.runner = JobRunner(self.engine, BODIES, self.services, clock)
        self.scheduler = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> dict[str, str]:
        """Close runs left by dead processes, put the jobs in the store, start the scheduler."""
        from ioc import scheduler as sched_mod

        sched_mod.RUNNER = self.runner
        stale = self.runner.reconcile()
        if stale:
            log.warning("%d run(s) left running by stopped processes marked failed", stale)
        self.scheduler = sched_mod.build_scheduler(self.engine, self.schedule)
        self.scheduler.start(paused=True)
        done = sched_mod.install_jobs(self.scheduler, self.schedule)
        self.scheduler.resume()
        self._poller = threading.Thread(target=self._poll, name="ioc-schedule-poll", daemon=True)
        self._poller.start()
        for job in self.scheduler.get_jobs():
            log.info(
                "job %s: %s, next turn %s (%s)",
                job.id,
                job.trigger,
                job.next_run_time,
                done.get(job.id, "kept"),
            )
        return done

    def _poll(self) -> None:
        """Turns changed by other processes (``ioc jobs trigger``, another service's run) are
        in the shared store: wake the scheduler regularly so it re-reads them."""
        while not self._stop.wait(self.schedule.settings.poll_seconds):
            with contextlib.suppress(Exception):
                self.scheduler.wakeup()

    def stop(self, reason: str = "service stopped") -> None:
        self._stop.set()
        if self.scheduler is not None and self.scheduler.running:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        self.runner.stop_active(reason)
        from ioc import scheduler as sched_mod

        if sched_mod.RUNNER is self.runner:
            sched_mod.RUNNER = None
        self.engine.dispose()

    def wait(self) -> None:
        """Block until SIGTERM/SIGINT (``--no-api``)."""
        while not self._stop.wait(1.0):
            pass


def _serve_api(database_url: str, host: str | None, port: int | None, workers: int | None) -> None:
    """The API under uvicorn in this process (the app comes from api's own factory)."""
    import uvicorn

    from api.settings import ApiSettings

    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    settings = ApiSettings(**overrides)
    os.environ["IOC_API_DATABASE_URL"] = database_url
    for key, value in overrides.items():
        os.environ[f"IOC_API_{key.upper()}"] = str(value)
    kwargs: dict[str, Any] = {}
    with contextlib.suppress(ImportError):
        from ioc.logging import uvicorn_log_config

        kwargs["log_config"] = uvicorn_log_config()
    click.echo(
        f"serving the API on {settings.public_url()} ({settings.workers} worker(s))", err=True
    )
    uvicorn.run(
        "api.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        http="httptools",
        loop="uvloop",
        **kwargs,
    )


@click.command("run")
@click.option("--no-api", is_flag=True, help="Run the scheduled work only (no HTTP server).")
@click.option("--host", default=None, help="API interface  [default: IOC_API_HOST or 127.0.0.1]")
@click.option("--port", default=None, type=int, help="API port  [default: IOC_API_PORT or 5000]")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="API worker processes  [default: IOC_API_WORKERS or 1]",
)
def run(no_api: bool, host: str | None, port: int | None, workers: int | None) -> None:
    """The service: crawls, digest, imagery intake, backups and retraining proposals on their
    schedules (IOC_SCHEDULE_*), plus the API. Stop with SIGTERM or Ctrl-C."""
    from gis.db.session import check_connection

    _configure_logging("INFO")
    app = _app()
    url = app.database_url()
    check_connection(url)
    revision = check_schema(url)
    service = Service(url, Path(app.state_dir))

    def on_term(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        done = service.start()
        click.echo(
            f"ioc run: schema {revision}, {len(done)} job(s) scheduled "
            f"({', '.join(sorted(done))}); time zone {service.schedule.tz.key}",
            err=True,
        )
        if no_api:
            service.wait()
        else:
            _serve_api(url, host, port, workers)
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.stop("service stopped (SIGTERM/SIGINT) while the run was going on")
        click.echo("ioc run: stopped", err=True)


# ------------------------------------------------------------------------------ ioc jobs


def _fmt_time(value: dt.datetime | None, tz) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _summary(counts: dict[str, Any]) -> str:
    keep = {
        k: v for k, v in (counts or {}).items() if k != "seconds" and not isinstance(v, dict | list)
    }
    return ", ".join(f"{k}={v}" for k, v in list(keep.items())[:6])


@click.group("jobs", invoke_without_command=True)
@click.option("--job", default=None, help="Only this job (`crawl` matches every outlet's crawl).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def jobs(ctx: click.Context, job: str | None, limit: int, as_json: bool) -> None:
    """Recorded runs of the scheduled jobs of `ioc run` (newest first)."""
    if ctx.invoked_subcommand:
        return
    from zoneinfo import ZoneInfo

    from ioc.scheduler import ScheduleSettings, recent_runs

    runs = recent_runs(_app().engine(), job, limit)
    if as_json:
        for r in runs:
            click.echo(json.dumps(r, default=str, ensure_ascii=False))
        return
    if not runs:
        click.echo("no recorded runs" + (f" of {job}" if job else "") + " (is `ioc run` running?)")
        return
    tz = ZoneInfo(ScheduleSettings().timezone)
    click.echo(
        f"{'id':>6}  {'job':<22} {'status':<9} {'started (' + tz.key + ')':<30} {'s':>7}  details"
    )
    for r in runs:
        details = r["error"] if r["status"] == "failed" else _summary(r["counts"])
        secs = f"{r['seconds']:.1f}" if r["seconds"] is not None else "-"
        click.echo(
            f"{r['id']:>6}  {r['job'][:22]:<22} {r['status']:<9} {_fmt_time(r['started_at'], tz):<30} "
            f"{secs:>7}  {(details or '')[:160]}"
        )


def _store_view():
    """The shared job store (reads and moves turns; runs nothing)."""
    from zoneinfo import ZoneInfo

    from ioc.scheduler import ScheduleSettings, StoreView

    return StoreView(_app().engine(), ZoneInfo(ScheduleSettings().timezone))


@jobs.command("schedule")
def jobs_schedule() -> None:
    """The jobs in the shared job store and their next turn."""
    from zoneinfo import ZoneInfo

    from ioc.scheduler import ScheduleSettings

    tz = ZoneInfo(ScheduleSettings().timezone)
    stored = _store_view().jobs()
    if not stored:
        click.echo("no scheduled jobs stored yet (start `ioc run` once)")
    for job in stored:
        click.echo(f"{job.id:<24} next {_fmt_time(job.next_run_time, tz):<20} {job.trigger}")


@jobs.command("trigger")
@click.argument("name")
def jobs_trigger(name: str) -> None:
    """Make a running `ioc run` run NAME at once (its next turn becomes now)."""
    from ioc.scheduler import ScheduleSettings

    _store_view().trigger_now(name)
    click.echo(
        f"{name}: next turn is now; a running `ioc run` starts it within "
        f"{ScheduleSettings().poll_seconds:g} s"
    )


@jobs.command("run")
@click.argument("name")
def jobs_run(name: str) -> None:
    """Run the job NAME here and now (under its lock; recorded with trigger 'manual')."""
    from gis.errors import IocError

    _configure_logging("INFO")
    app = _app()
    service = Service(app.database_url(), Path(app.state_dir))
    try:
        service.schedule.job(name)
        run_id = service.runner.run(name, trigger="manual")
        if run_id is None:
            raise IocError(f"{name} is running in another process right now; try again later.")
        from ioc.scheduler import recent_runs

        row = next(r for r in recent_runs(service.engine, name, 5) if r["id"] == run_id)
    finally:
        service.stop("`ioc jobs run` interrupted")
    click.echo(json.dumps(row, default=str, ensure_ascii=False))
    if row["status"] != "succeeded":
        raise click.exceptions.Exit(1)
