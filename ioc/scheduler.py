"""The scheduler of ``ioc run``: which jobs run when, and how each run is guarded and recorded.

- **Schedule** (:class:`ScheduleSettings`, ``IOC_SCHEDULE_*``, or a YAML file named by
  ``IOC_SCHEDULE_FILE``): one crawl job per enabled outlet (``crawl:<outlet>``, every 30 min by
  default, per outlet overridable), ``digest`` (cron, 06:30), ``imagery``, ``backup``,
  ``retrain``. Cron expressions are read in the province's time zone (``Asia/Ho_Chi_Minh``).
- **Scheduler**: APScheduler 3 (``BackgroundScheduler``) with its job store in the project's
  PostgreSQL (``apscheduler_jobs``, created by migration 0009), so the next turn of each job
  survives restarts and every ``ioc run`` process on the database sees the same turns.
- **One run per turn** (:class:`JobRunner`): before a job body runs, the process takes the
  job's PostgreSQL advisory lock (``pg_try_advisory_lock`` on a connection of its own, held for
  the whole run): a second process that reaches the same turn finds it taken and skips it; a
  turn already started by another process (a run of the job started after the turn's time) is
  skipped too. A run left ``running`` by a process that died (kill -9: its connection, hence
  its lock, is gone) is marked ``failed`` with the reason by the next process that takes the
  lock, at its start or at the job's next turn. Every run is a row of ``job_runs``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import text

from gis.errors import IocError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler
    from sqlalchemy import Engine

log = logging.getLogger("ioc.scheduler")

JOB_KINDS = ("crawl", "digest", "imagery", "backup", "retrain")
LOCK_NAMESPACE = "ioc-monitor job"  # first key of the two-key advisory lock (hashtext)
JOB_FUNC = "ioc.scheduler:run_scheduled"  # what the job store keeps (a textual reference)


class ScheduleError(IocError):
    """A bad schedule setting or file (one sentence naming the setting)."""


class JobSkipped(Exception):  # noqa: N818 - a normal outcome, not an error
    """Raised by a job body that found nothing to do; the run is recorded as succeeded."""


class ScheduleSettings(BaseSettings):
    """When the jobs of ``ioc run`` run (env prefix ``IOC_SCHEDULE_``).

    Cron expressions have five fields (minute hour day month weekday) and are read in
    ``timezone``. An empty expression switches the job off, as does naming it in ``disabled``.
    ``crawl_intervals`` gives some outlets their own interval in minutes (JSON in the
    environment: ``IOC_SCHEDULE_CRAWL_INTERVALS='{"vnexpress": 15}'``).
    """

    model_config = SettingsConfigDict(env_prefix="IOC_SCHEDULE_", env_file=".env", extra="ignore")

    file: Path | None = Field(default=None, description="YAML schedule file overriding these.")
    timezone: str = "Asia/Ho_Chi_Minh"
    crawl_every_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    crawl_intervals: dict[str, int] = Field(default_factory=dict)
    crawl_timeout_minutes: int = Field(default=25, ge=1)
    digest: str = "30 6 * * *"
    digest_day: str = Field(
        default="previous",
        pattern="^(previous|same)$",
        description="Digest of the day before the run (previous) or of its day.",
    )
    imagery: str = "15 */3 * * *"
    backup: str = "30 1 * * *"
    retrain: str = "0 4 * * *"
    retrain_min_corrections: int = Field(default=50, ge=1)
    disabled: Annotated[list[str], NoDecode] = Field(default_factory=list)
    poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the job store is re-read for turns "
        "changed by other processes (`ioc jobs trigger`).",
    )
    workers: int = Field(default=4, ge=1, le=32, description="Jobs running at the same time.")
    misfire_grace_minutes: int = Field(
        default=10,
        ge=1,
        description="A crawl or imagery turn missed by more "
        "(service down) is skipped; digest and backup wait 12 h.",
    )

    @field_validator("disabled", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: its id (``crawl:vnexpress``, ``digest``...) and trigger."""

    name: str
    kind: str
    trigger: Any  # an APScheduler trigger
    misfire_grace_seconds: int
    outlet: str | None = None

    def describe(self) -> str:
        return str(self.trigger)


@dataclass
class Schedule:
    settings: ScheduleSettings
    tz: ZoneInfo
    jobs: list[JobSpec] = field(default_factory=list)

    def job(self, name: str) -> JobSpec:
        for spec in self.jobs:
            if spec.name == name:
                return spec
        raise ScheduleError(
            f"No scheduled job named '{name}'; the schedule has: {', '.join(s.name for s in self.jobs) or 'none'}."
        )


def _cron(expr: str, tz: ZoneInfo, setting: str):
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(expr, timezone=tz)
    except ValueError as exc:
        raise ScheduleError(
            f"{setting} = '{expr}' is not a 5-field cron expression: {exc}."
        ) from None


def load_schedule(settings: ScheduleSettings, outlets: list[str]) -> Schedule:
    """The jobs of the service: ``settings`` (and its file, when set) over ``outlets``."""
    from apscheduler.triggers.interval import IntervalTrigger

    if settings.file is not None:
        path = Path(settings.file)
        if not path.is_file():
            raise ScheduleError(f"IOC_SCHEDULE_FILE={path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ScheduleError(
                f"Schedule file {path} is not valid YAML: {str(exc).splitlines()[0]}."
            ) from None
        if not isinstance(data, dict):
            raise ScheduleError(
                f"Schedule file {path} must be a mapping (timezone, crawl, digest...)."
            )
        updates = dict(data)
        crawl = updates.pop("crawl", None)
        if isinstance(crawl, dict):
            if "every_minutes" in crawl:
                updates["crawl_every_minutes"] = crawl["every_minutes"]
            if "outlets" in crawl:
                updates["crawl_intervals"] = crawl["outlets"]
            if "timeout_minutes" in crawl:
                updates["crawl_timeout_minutes"] = crawl["timeout_minutes"]
        elif crawl is not None:
            raise ScheduleError(
                f"Schedule file {path}: 'crawl' must be a mapping (every_minutes, outlets)."
            )
        unknown = set(updates) - set(ScheduleSettings.model_fields) - {"file"}
        if unknown:
            raise ScheduleError(
                f"Schedule file {path}: unknown key(s) {', '.join(sorted(unknown))}."
            )
        try:
            settings = ScheduleSettings.model_validate({**settings.model_dump(), **updates})
        except Exception as exc:  # pydantic ValidationError
            first = str(exc).splitlines()
            raise ScheduleError(f"Schedule file {path}: {' '.join(first[1:3]).strip()}.") from None
    try:
        tz = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"IOC_SCHEDULE_TIMEZONE='{settings.timezone}' is not a time zone name."
        ) from None
    disabled = set(settings.disabled)
    known = set(JOB_KINDS) | {f"crawl:{o}" for o in outlets}
    bad = [d for d in disabled if d not in known]
    if bad:
        raise ScheduleError(
            f"IOC_SCHEDULE_DISABLED names unknown job(s) {', '.join(bad)}; "
            f"jobs are {', '.join(sorted(known))}."
        )
    unknown_outlets = sorted(set(settings.crawl_intervals) - set(outlets))
    if unknown_outlets:
        raise ScheduleError(
            f"IOC_SCHEDULE_CRAWL_INTERVALS names outlet(s) not enabled in the sites "
            f"file: {', '.join(unknown_outlets)}."
        )
    grace = settings.misfire_grace_minutes * 60
    jobs: list[JobSpec] = []
    if "crawl" not in disabled:
        for outlet in outlets:
            name = f"crawl:{outlet}"
            if name in disabled:
                continue
            minutes = settings.crawl_intervals.get(outlet, settings.crawl_every_minutes)
            if minutes < 1:
                raise ScheduleError(f"Crawl interval of {outlet} must be at least 1 minute.")
            jobs.append(
                JobSpec(name, "crawl", IntervalTrigger(minutes=minutes, timezone=tz), grace, outlet)
            )
    for kind, grace_s in (
        ("digest", 12 * 3600),
        ("imagery", grace),
        ("backup", 12 * 3600),
        ("retrain", grace),
    ):
        expr = getattr(settings, kind).strip()
        if kind in disabled or not expr:
            continue
        jobs.append(JobSpec(kind, kind, _cron(expr, tz, f"IOC_SCHEDULE_{kind.upper()}"), grace_s))
    return Schedule(settings, tz, jobs)


# ------------------------------------------------------------------------------ the runs


def lock_key_sql() -> str:
    return "hashtext(:ns), hashtext(:job)"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live ``ioc`` process on this machine (a reused pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal check
    return b"ioc" in cmdline


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".strip().rstrip(":")[:2000]


@dataclass
class RunContext:
    """What a job body gets: the database, settings, the clock, where to put its counts."""

    runner: JobRunner
    job: str
    run_id: int
    scheduled_for: dt.datetime | None
    counts: dict[str, Any] = field(default_factory=dict)
    children: list[Any] = field(default_factory=list)  # child processes to stop on shutdown

    @property
    def engine(self) -> Engine:
        return self.runner.engine

    @property
    def services(self) -> Any:
        return self.runner.services

    def now(self) -> dt.datetime:
        return self.runner.now()


JobBody = Callable[[RunContext], dict[str, Any] | None]


class JobRunner:
    """Runs job bodies under their advisory lock and records each run in ``job_runs``.

    Parameters
    ----------
    engine
        The project database.
    bodies
        Job kind -> body (``crawl`` bodies get the outlet as ``ctx.job``'s suffix).
    services
        Whatever the bodies need (settings, state dir...), passed through untouched.
    clock
        Returns the current aware datetime; tests inject their own.
    """

    def __init__(
        self,
        engine: Engine,
        bodies: dict[str, JobBody],
        services: Any = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.bodies = bodies
        self.services = services
        self.clock = clock
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.active: dict[int, RunContext] = {}
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        return self.clock() if self.clock else dt.datetime.now(dt.UTC)

    # -- records ----------------------------------------------------------------------
    def _fail_stale(self, conn, job: str) -> int:
        """With ``job``'s lock held: mark runs left 'running' by dead processes failed."""
        rows = conn.execute(
            text("SELECT id, host, pid FROM job_runs WHERE job = :j AND status = 'running'"),
            {"j": job},
        ).all()
        n = 0
        for run_id, host, pid in rows:
            if run_id in self.active:
                continue
            if host == self.host and pid != self.pid and _pid_alive(pid):
                # same machine, process still there (its database connection was cut): not ours to close
                continue
            owner = f"process {pid} on {host}"
            reason = (
                f"interrupted: {owner} stopped before the run finished "
                f"(its lock was released; found by {self.pid} on {self.host})"
            )
            conn.execute(
                text(
                    "UPDATE job_runs SET status = 'failed', finished_at = now(), error = :e "
                    "WHERE id = :id AND status = 'running'"
                ),
                {"e": reason, "id": run_id},
            )
            log.warning("job %s: run %s marked failed: %s", job, run_id, reason)
            n += 1
        return n

    @contextlib.contextmanager
    def _job_lock(self, job: str):
        """Yields a connection holding ``job``'s advisory lock, or None when another has it."""
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(
                text(f"SELECT pg_try_advisory_lock({lock_key_sql()})"),
                {"ns": LOCK_NAMESPACE, "job": job},
            ).scalar()
            if not got:
                yield None
                return
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    conn.execute(
                        text(f"SELECT pg_advisory_unlock({lock_key_sql()})"),
                        {"ns": LOCK_NAMESPACE, "job": job},
                    )
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def reconcile(self) -> int:
        """At start: close the runs of every job whose owner died (lock free, process gone)."""
        with self.engine.connect() as conn:
            jobs = [
                r[0]
                for r in conn.execute(
                    text("SELECT DISTINCT job FROM job_runs WHERE status = 'running'")
                )
            ]
        n = 0
        for job in jobs:
            with self._job_lock(job) as conn:
                if conn is not None:
                    n += self._fail_stale(conn, job)
        return n

    def _finish(self, run_id: int, status: str, counts: dict[str, Any], error: str | None) -> None:
        payload = json.dumps(counts, default=str, ensure_ascii=False)
        delay = 1.0
        deadline = time.monotonic() + 120
        while True:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        text(
                            "UPDATE job_runs SET status = :s, finished_at = now(), counts = CAST(:c AS jsonb), "
                            "error = :e WHERE id = :id"
                        ),
                        {"s": status, "c": payload, "e": error, "id": run_id},
                    )
                return
            except Exception as exc:  # noqa: BLE001 - the database may be restarting
                if time.monotonic() > deadline:
                    log.error(
                        "run %s could not be recorded as %s: %s (the next process to take "
                        "the job's lock will mark it failed)",
                        run_id,
                        status,
                        _one_line(exc),
                    )
                    return
                log.warning(
                    "recording run %s failed (%s); retrying in %.0f s",
                    run_id,
                    _one_line(exc),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 15)

    # -- a run ------------------------------------------------------------------------
    def run(
        self, job: str, trigger: str = "schedule", scheduled_for: dt.datetime | None = None
    ) -> int | None:
        """Run ``job`` once if no other process is running it; returns the job_runs id, or
        None when the turn was skipped (another process has it, or already ran it)."""
        kind = job.split(":", 1)[0]
        body = self.bodies.get(kind)
        if body is None:
            raise ScheduleError(f"No job body for '{job}'.")
        with self._job_lock(job) as lock_conn:
            if lock_conn is None:
                log.info("job %s: running in another process; this turn is skipped here", job)
                return None
            self._fail_stale(lock_conn, job)
            if trigger == "schedule" and scheduled_for is not None:
                done = lock_conn.execute(
                    text("SELECT id FROM job_runs WHERE job = :j AND started_at >= :t LIMIT 1"),
                    {"j": job, "t": scheduled_for},
                ).first()
                if done is not None:
                    log.info(
                        "job %s: the turn of %s was already run (run %s); skipped",
                        job,
                        scheduled_for.isoformat(),
                        done[0],
                    )
                    return None
            run_id = int(
                lock_conn.execute(
                    text(
                        "INSERT INTO job_runs (job, status, host, pid, trigger) "
                        "VALUES (:j, 'running', :h, :p, :t) RETURNING id"
                    ),
                    {"j": job, "h": self.host, "p": self.pid, "t": trigger},
                ).scalar_one()
            )
            ctx = RunContext(self, job, run_id, scheduled_for)
            with self._lock:
                self.active[run_id] = ctx
            started = time.monotonic()
            status, error = "succeeded", None
            log.info("job %s: run %s started", job, run_id)
            try:
                with _log_context(run_id, job):
                    out = body(ctx)
                if out:
                    ctx.counts.update(out)
            except JobSkipped as exc:
                ctx.counts.setdefault("skipped", str(exc))
            except BaseException as exc:  # noqa: BLE001 - recorded, never lost
                status, error = "failed", _one_line(exc)
                if isinstance(exc, Exception) and not isinstance(exc, IocError):
                    log.error(
                        "job %s: run %s failed: %s\n%s", job, run_id, error, traceback.format_exc()
                    )
                else:
                    log.error("job %s: run %s failed: %s", job, run_id, error)
                if not isinstance(exc, Exception):
                    self._finish(run_id, status, ctx.counts, error)
                    raise
            finally:
                with self._lock:
                    self.active.pop(run_id, None)
            seconds = round(time.monotonic() - started, 3)
            ctx.counts.setdefault("seconds", seconds)
            self._finish(run_id, status, ctx.counts, error)
            _observe(job, status, seconds)
            log.info(
                "job %s: run %s %s in %.1f s %s",
                job,
                run_id,
                status,
                seconds,
                json.dumps(ctx.counts, default=str, ensure_ascii=False)[:500],
            )
            return run_id

    def stop_active(self, reason: str) -> None:
        """Service shutting down: stop the children of running jobs, record the runs failed."""
        with self._lock:
            active = list(self.active.items())
        for run_id, ctx in active:
            for child in ctx.children:
                with contextlib.suppress(Exception):
                    child.terminate()
            self._finish(run_id, "failed", ctx.counts, f"interrupted: {reason}")


def _log_context(run_id: int, job: str):
    """Every log line of the run carries its run id and job (``ioc.logging``)."""
    try:
        from ioc.logging import run_context
    except ImportError:
        return contextlib.nullcontext()
    return run_context(run_id, job=job)


def _observe(job: str, status: str, seconds: float) -> None:
    """Job durations and failures for /metrics (``api.metrics``)."""
    try:
        from api.metrics import observe_job
    except ImportError:
        return
    try:
        observe_job(job, seconds, status)
    except Exception as exc:  # noqa: BLE001 - metrics never fail a run
        log.warning("job %s: metrics not recorded: %s", job, exc)


# --------------------------------------------------------------------- APScheduler glue

RUNNER: JobRunner | None = None  # the process's runner (the job store keeps only a reference)
_turn = threading.local()


def run_scheduled(job: str) -> int | None:
    """What APScheduler calls (by textual reference, from the job store)."""
    if RUNNER is None:
        raise RuntimeError("no job runner in this process (ioc.scheduler.RUNNER is unset)")
    return RUNNER.run(job, "schedule", getattr(_turn, "scheduled", None))


def _executor(max_workers: int):
    from apscheduler.executors.base import run_job
    from apscheduler.executors.pool import ThreadPoolExecutor

    class TurnExecutor(ThreadPoolExecutor):
        """A thread pool that tells the job which turn (scheduled time) it is running."""

        def _do_submit_job(self, job, run_times):
            def call(job, alias, run_times, logger_name):
                _turn.scheduled = run_times[-1] if run_times else None
                try:
                    return run_job(job, alias, run_times, logger_name)
                finally:
                    _turn.scheduled = None

            def callback(f):
                exc = f.exception()
                if exc:
                    self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
                else:
                    self._run_job_success(job.id, f.result())

            f = self._pool.submit(call, job, job._jobstore_alias, run_times, self._logger.name)
            f.add_done_callback(callback)

    return TurnExecutor(max_workers)


def build_scheduler(engine: Engine, schedule: Schedule) -> BaseScheduler:
    """A BackgroundScheduler over the PostgreSQL job store (not started)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        executors={"default": _executor(schedule.settings.workers)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=schedule.tz,
    )


def install_jobs(
    scheduler: BaseScheduler, schedule: Schedule, first_crawl_now: bool = True
) -> dict[str, str]:
    """Put the schedule's jobs in the (started, possibly paused) scheduler's store.

    A job already stored with the same trigger keeps its next turn (a restart neither skips
    nor postpones it); a changed trigger is rescheduled; stored jobs no longer in the
    schedule are removed. New crawl jobs first run now. Returns {job: what was done}.
    """
    done: dict[str, str] = {}
    wanted = {spec.name: spec for spec in schedule.jobs}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
            done[job.id] = "removed"
    for spec in schedule.jobs:
        existing = scheduler.get_job(spec.name)
        if (
            existing is not None
            and str(existing.trigger) == str(spec.trigger)
            and getattr(existing.trigger, "timezone", None)
            == getattr(spec.trigger, "timezone", None)
            and existing.misfire_grace_time == spec.misfire_grace_seconds
        ):
            done[spec.name] = "kept"
            continue
        kwargs: dict[str, Any] = {}
        if existing is None and spec.kind == "crawl" and first_crawl_now:
            kwargs["next_run_time"] = dt.datetime.now(schedule.tz)
        scheduler.add_job(
            JOB_FUNC,
            trigger=spec.trigger,
            args=[spec.name],
            id=spec.name,
            name=spec.name,
            replace_existing=True,
            misfire_grace_time=spec.misfire_grace_seconds,
            **kwargs,
        )
        done[spec.name] = "added" if existing is None else "rescheduled"
    return done


class StoreView:
    """The shared job store without a scheduler thread: read the jobs, move a turn.

    (A started-but-paused APScheduler would process due jobs itself while shutting down and so
    swallow the turn it was asked to move.)
    """

    def __init__(self, engine: Engine, tz: ZoneInfo) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.store = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
        self.store.start(BackgroundScheduler(timezone=tz), "default")

    def jobs(self) -> list[Any]:
        return self.store.get_all_jobs()

    def trigger_now(self, job: str) -> dt.datetime:
        """Make ``job``'s next turn now (running services see it within IOC_SCHEDULE_POLL_SECONDS)."""
        stored = self.store.lookup_job(job)
        if stored is None:
            names = ", ".join(j.id for j in self.jobs()) or "none (has `ioc run` been started?)"
            raise ScheduleError(f"No scheduled job '{job}' in the job store; stored jobs: {names}.")
        when = dt.datetime.now(dt.UTC)
        stored._modify(next_run_time=when)
        self.store.update_job(stored)
        return when


def recent_runs(engine: Engine, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs (newest first), optionally of one job (``crawl`` matches every outlet)."""
    where, params = "", {"limit": limit}
    if job:
        where = "WHERE job = :job OR job LIKE :prefix"
        params.update(job=job, prefix=f"{job}:%")
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('public.job_runs')")).scalar() is None:
            raise ScheduleError("The database has no job_runs table yet: run `ioc db migrate`.")
        rows = (
            conn.execute(
                text(
                    "SELECT id, job, status, started_at, finished_at, counts, error, host, pid, trigger "
                    f"FROM job_runs {where} ORDER BY started_at DESC, id DESC LIMIT :limit"
                ),
                params,
            )
            .mappings()
            .all()
        )
    out = []
    for r in rows:
        d = dict(r)
        d["seconds"] = (
            round((d["finished_at"] - d["started_at"]).total_seconds(), 1)
            if d["finished_at"]
            else None
        )
        out.append(d)
    return out
