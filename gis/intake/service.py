"""One poll of the imagery intake: every configured source, then detection on new pairs."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from gis.errors import IocError
from gis.intake import pairing, records, stac, watch
from gis.intake.settings import IntakeSettings

log = logging.getLogger("gis.intake")


@dataclass
class IntakeResult:
    """What one source did in one poll.

    ``source``: ``stac``, ``watch`` or ``detection``. ``error``: the sentence explaining why the
    source could not be polled at all (catalogue unreachable, area unknown ...): the scheduler
    records the run as failed with it. Per-scene problems are in ``details``, not ``error``.
    """

    source: str
    discovered: int = 0  # catalogue items / deliveries seen
    processed: int = 0  # scenes written/moved and recorded as usable
    rejected: int = 0  # recorded as rejected (final), with the reason
    failed: int = 0  # transient failures, retried at a later poll
    skipped: int = 0  # already handled, waiting for a retry, or past this poll's max_new
    waiting: int = 0  # watch folder: still being written, left alone
    detections: int = 0  # detection runs stored (succeeded)
    detections_failed: int = 0
    alerts: int = 0  # parcel alerts raised by those runs
    error: str | None = None
    details: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def counts(self) -> dict:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}


def _retry_wait(settings: IntakeSettings, attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=settings.retry_after_s * 2 ** max(attempts - 1, 0))


def _final_status(
    status: str, row: records.Seen | None, settings: IntakeSettings, reason: str | None
) -> tuple[str, str | None]:
    """A failure that reached the attempt limit becomes a rejection."""
    attempts = (row.attempts if row else 0) + 1
    if status == "failed" and attempts >= settings.max_attempts:
        return "rejected", f"{reason} (gave up after {attempts} attempts)"
    return status, reason


def poll_stac(
    bind, settings: IntakeSettings, state_dir: Path, now: dt.datetime | None = None, area=None
) -> IntakeResult:
    """Search the catalogue, read each new item's window, record it (see :mod:`gis.intake.stac`)."""
    res = IntakeResult("stac")
    now = now or dt.datetime.now(dt.UTC)
    out_root = settings.scene_dir(state_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        res.error = f"cannot write scenes into {out_root}: {exc.strerror or exc}"
        log.error("STAC source: %s", res.error)
        return res
    try:
        area = (
            area
            if area is not None
            else records.area_of_interest(bind, settings.province_code, settings.bbox)
        )
        items = stac.search(settings, area, now)
    except IocError as exc:
        res.error = str(exc)
        log.error("STAC source: %s", res.error)
        return res
    res.discovered = len(items)
    coll_of = {
        str(i.get("id")): str(i.get("collection") or settings.stac_collection) for i in items
    }
    already: dict[str, records.Seen] = {}
    for coll in set(coll_of.values()):
        ids = [i for i, c in coll_of.items() if c == coll]
        already.update(records.seen(bind, "stac", coll, ids))
    wall = dt.datetime.now(dt.UTC)
    for item in items:
        iid = str(item.get("id"))
        row = already.get(iid)
        if not records.due(row, wall):
            res.skipped += 1
            continue
        if res.processed + res.rejected + res.failed >= settings.stac_max_new:
            res.skipped += 1
            continue
        try:
            outcome = stac.read_item(item, area, out_root, settings)
        except OSError as exc:  # the local folder, not the item: tried again later
            outcome = stac.ItemOutcome(
                "failed", f"item {iid}: cannot write under {out_root}: {exc.strerror or exc}"
            )
        status, reason = _final_status(outcome.status, row, settings, outcome.reason)
        cloud = item.get("properties", {}).get("eo:cloud_cover")
        props = {
            k: v
            for k, v in item.get("properties", {}).items()
            if k
            in (
                "platform",
                "eo:cloud_cover",
                "s2:mgrs_tile",
                "proj:epsg",
                "s2:processing_baseline",
                "constellation",
            )
        }
        props.update(outcome.notes)
        records.record(
            bind,
            source="stac",
            collection=coll_of[iid],
            item_id=iid,
            status=status,
            reason=reason,
            acquired_at=stac.item_datetime(item),
            cloud_cover=float(cloud) if cloud is not None else None,
            usable_share=outcome.usable_share,
            local_path=str(outcome.local_path) if outcome.local_path else None,
            href=stac._self_href(item),
            local_bytes=outcome.local_bytes,
            properties=props,
            footprint=stac.item_footprint(item),
            retry_after=_retry_wait(settings, (row.attempts if row else 0) + 1),
        )
        setattr(res, status, getattr(res, status) + 1)
        res.details.append({"item": iid, "status": status, "reason": reason})
        if status == "processed":
            log.info("STAC item %s processed into %s", iid, outcome.local_path)
        else:
            log.warning("STAC item %s %s: %s", iid, status, reason)
    return res


def poll_watch(bind, settings: IntakeSettings) -> IntakeResult:
    """Take the settled deliveries of the watch folder (see :mod:`gis.intake.watch`)."""
    res = IntakeResult("watch")
    folder = settings.watch_dir
    if folder is None or not folder.is_dir():
        res.error = f"watch folder {folder} does not exist"
        log.error("watch folder: %s", res.error)
        return res
    take, wait = watch.ready(folder, settings)
    res.discovered = len(take) + len(wait)
    res.waiting = len(wait)
    for d in wait:
        log.info("watch folder: %s left alone (still being written)", d.path.name)
    for d in take:
        iid = watch.item_id(d)
        try:
            checked = watch.check(d.path, settings)
        except IocError as exc:
            reason = str(exc)
            dst = watch.move_rejected(d.path, folder, reason)
            log.warning("watch folder: %s rejected: %s", d.path.name, reason)
            try:
                records.record(
                    bind,
                    source="watch",
                    collection="",
                    item_id=iid,
                    status="rejected",
                    reason=reason,
                    href=str(dst),
                )
            except SQLAlchemyError as db_exc:
                log.error(
                    "could not record the rejection of %s: %s",
                    d.path.name,
                    str(db_exc).splitlines()[0],
                )
            res.rejected += 1
            res.details.append({"item": iid, "status": "rejected", "reason": reason})
            continue
        dst = watch.move_processed(d.path, folder)
        try:
            size = sum(f.stat().st_size for f in watch._files(dst))
            records.record(
                bind,
                source="watch",
                collection="",
                item_id=iid,
                status="processed",
                acquired_at=checked.scene.acquired_at,
                usable_share=checked.usable_share,
                local_path=str(dst),
                href=str(d.path),
                local_bytes=size,
                properties={
                    "layout": checked.scene.metadata.get("layout"),
                    "sensor": checked.scene.sensor,
                    "bands": sorted(checked.scene.bands),
                },
                footprint=checked.footprint,
            )
        except Exception:
            # not recorded: put the delivery back so the next poll takes it again
            dst.rename(d.path)
            raise
        res.processed += 1
        res.details.append({"item": iid, "status": "processed", "path": str(dst)})
        log.info("watch folder: %s processed into %s", d.path.name, dst)
    return res


def run_detections(bind, settings: IntakeSettings, land=None) -> IntakeResult:
    """Detection + parcel alerts on the best pair of each processed, not yet paired scene."""
    res = IntakeResult("detection")
    pool, paired = pairing.candidates(bind)
    todo = sorted(
        (c for c in pool if c.id not in paired), key=lambda c: c.acquired_at, reverse=True
    )
    for after in todo:
        if res.detections + res.detections_failed >= settings.max_detections:
            break
        before = pairing.choose_before(after, pool, settings)
        if before is None:
            continue
        out = pairing.detect_pair(bind, before, after, land)
        pair = {"before": before.label, "after": after.label, **out}
        res.details.append(pair)
        if out["status"] == "succeeded":
            res.detections += 1
            res.alerts += int(out.get("alerts") or 0)
        else:
            res.detections_failed += 1
    return res


class PollReport(list):
    """The :class:`IntakeResult` of each source of one poll (a list), with a summary for a job
    record: ``as_dict()`` (counts per source and the errors) and ``errors``."""

    @property
    def errors(self) -> list[str]:
        return [f"{r.source}: {r.error}" for r in self if r.error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        out: dict = {r.source: r.counts() for r in self}
        if self.errors:
            out["errors"] = self.errors
        return out


def poll(
    bind,
    settings: IntakeSettings | None = None,
    *,
    land=None,
    state_dir: Path | None = None,
    now: dt.datetime | None = None,
) -> PollReport:
    """Discover new scenes from every configured source, record them, and run change detection
    with parcel alerts on each new usable pair.

    Parameters
    ----------
    bind
        SQLAlchemy Engine (each scene recorded in its own transaction) or Connection.
    settings
        :class:`IntakeSettings`; None = read from the environment (``IOC_INTAKE_*``,
        ``IOC_STAC_*``, ``.env``) now, as the composition root does.
    land
        :class:`gis.settings.LandSettings` for detection (detector, models, rules); None =
        read from the environment (``IOC_LAND_*``).
    state_dir
        Where catalogue scenes are written when ``IOC_INTAKE_DIR`` is unset
        (``<state_dir>/imagery``); default ``./.state``.
    now
        End of the catalogue search's time window (default: now; tests set it).

    Returns
    -------
    PollReport
        A list of :class:`IntakeResult`, one per enabled source (``stac``, ``watch``) and one
        for ``detection``. A source that could not be polled has ``error`` set (and is in
        ``report.errors``); the others still ran. Nothing is raised for a source's failure:
        a caller that records runs should record the poll as failed when ``report.errors``.
    """
    from gis.settings import LandSettings

    settings = settings if settings is not None else IntakeSettings()
    land = land if land is not None else LandSettings()
    state_dir = state_dir or Path.cwd() / ".state"
    results = PollReport()
    if settings.stac_enabled:
        results.append(poll_stac(bind, settings, state_dir, now=now))
    if settings.watch_dir is not None:
        results.append(poll_watch(bind, settings))
    if settings.detect and settings.max_detections > 0:
        try:
            results.append(run_detections(bind, settings, land))
        except SQLAlchemyError as exc:
            r = IntakeResult(
                "detection",
                error=f"database error while pairing scenes: {str(exc).splitlines()[0]}",
            )
            log.error(r.error)
            results.append(r)
    return results
