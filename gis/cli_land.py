"""``ioc land ...``: cadastre import, change detection, parcel alerts.

Commands get the database from the click context object (``ioc.cli.AppContext``: engine(),
database_url()) and settings (``IOC_LAND_*``) read here, at the edge.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from gis.db.models import REVIEW_STATUSES
from gis.errors import IocError
from gis.settings import LandSettings


def _engine():
    obj = click.get_current_context().obj
    if obj is None or not hasattr(obj, "engine"):
        raise click.ClickException("no database configured (run through the `ioc` command).")
    return obj.engine()


@contextmanager
def _connect(bind) -> Iterator:
    """A connection from an Engine (or the Connection itself, e.g. in tests)."""
    from sqlalchemy import Connection

    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def _fail(exc: BaseException) -> click.ClickException:
    """One line for an :class:`IocError`, with its exit status (2: user error, 1: other)."""
    error = click.ClickException(str(exc))
    error.exit_code = getattr(exc, "exit_code", 2)
    return error


@click.group()
def land() -> None:
    """Land monitoring: cadastre, change detection, parcel alerts."""


# ----------------------------------------------------------------------------------- cadastre
@land.command("import-cadastre")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--crs", help="CRS of the file when it has none or a wrong one (e.g. EPSG:5897).")
@click.option("--layer", help="Layer of a multi-layer file (GeoPackage, GML).")
@click.option("--commune", help="Commune code for files without a commune field.")
@click.option(
    "--code-version",
    type=click.Choice(["auto", "2014", "2024"]),
    default="auto",
    show_default=True,
    help="Version of the land-use codes in the file.",
)
@click.option(
    "--swap-xy",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="x = northing in the file (Vietnamese surveying order).",
)
@click.option(
    "--commune-codes",
    type=click.Choice(["old", "new"]),
    default="old",
    show_default=True,
    help="old: the file's commune codes are pre-2025 codes (mapped to the current "
    "commune through the crosswalk); new: they are current codes.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="TARGET=NAME",
    help="Map a file field to a parcel attribute (repeatable), e.g. sheet_number=SoTo.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Import parcels that lie outside the administrative units they claim, or "
    "that move the parcels already stored all alike (by default the import "
    "fails and names the CRS they are likely in).",
)
def import_cadastre_cmd(
    file: Path, crs, layer, commune, code_version, swap_xy, commune_codes, fields, force
) -> None:
    """Import cadastral parcels from FILE (GeoPackage, Shapefile, GeoJSON, GML; VN-2000 CRSs).

    Upserts by (commune, old commune, map sheet, parcel number) in one transaction; repaired
    geometries are reported, unrepairable ones abort the import naming their keys. Parcels
    must lie in the administrative units they claim (within 150 m), where those have an
    outline, and a re-import must not move the stored parcels all alike (median over 50 m):
    a wrong declared CRS fails the import, naming the likely one.
    """
    from gis.cadastre import import_cadastre

    field_map = {}
    for item in fields:
        if "=" not in item:
            raise click.BadParameter(f"'{item}' is not TARGET=NAME", param_hint="--field")
        k, v = item.split("=", 1)
        field_map[k.strip()] = v.strip()
    try:
        report = import_cadastre(
            _engine(),
            file,
            crs=crs,
            layer=layer,
            field_map=field_map or None,
            commune_code=commune,
            code_version=None if code_version == "auto" else code_version,
            swap_xy=swap_xy,
            commune_codes=commune_codes,
            force=force,
        )
    except IocError as exc:
        raise _fail(exc) from exc
    click.echo(report.summary())


# ---------------------------------------------------------------------------------- detection
def _progress_printer(enabled: bool):
    if not enabled:
        return None
    state = {"last": -1}

    def progress(done: int, total: int) -> None:
        pct = int(100 * done / total)
        if pct != state["last"] and (pct % 5 == 0 or done == total):
            state["last"] = pct
            click.echo(f"\r  tiles {done}/{total} ({pct} %)", nl=done == total, err=True)

    return progress


@land.command("detect")
@click.argument(
    "scenes",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    metavar="BEFORE AFTER | SCENE SCENE SCENE...",
)
@click.option(
    "--mask-out",
    type=click.Path(path_type=Path),
    help="Write a uint8 GeoTIFF on BEFORE's grid: 1 change, 0 no change, 255 nodata.",
)
@click.option(
    "--vector-out",
    type=click.Path(path_type=Path),
    help="Write the change polygons as GeoJSON (EPSG:4326, area in m²).",
)
@click.option(
    "--store/--no-store",
    default=False,
    show_default=True,
    help="Store the run, its changes and parcel alerts in the database.",
)
@click.option(
    "--method",
    type=click.Choice(["cnn", "gbm", "cva"]),
    default=None,
    help="Detector: cnn (default; IOC_LAND_DETECTOR), gbm (gradient boosting) or cva "
    "(unsupervised change vector analysis, no model). Their accuracy on unseen "
    "cities: gis/models/MODEL_CARD.md.",
)
@click.option("--model", type=click.Path(path_type=Path), help="Model file for cnn/gbm.")
@click.option(
    "--threshold", type=float, default=0.5, show_default=True, help="Change probability threshold."
)
@click.option(
    "--mmu",
    type=float,
    default=300.0,
    show_default=True,
    help="Minimum mapping unit in m² (smaller change patches are dropped).",
)
@click.option("--tile", type=int, default=1024, show_default=True, help="Tile size in pixels.")
@click.option(
    "--tta/--no-tta",
    default=None,
    help="cnn: average the model over four flips (4x the model time; no gain measured "
    "on OSCD). Default: IOC_LAND_TTA.",
)
@click.option("--dask-scheduler", help="Run tiles on a Dask cluster (scheduler address).")
@click.option("--rules", type=click.Path(path_type=Path), help="Alert rules file (YAML).")
@click.option(
    "--force",
    is_flag=True,
    help="With --store: store a new run even if the same run (same scene contents, "
    "method, model and parameters) is stored already; without it that run is "
    "updated, keeping the reviews of its alerts.",
)
@click.option(
    "--dates",
    metavar="YYYY-MM-DD,...",
    help="Time series: the scenes' acquisition dates, one per scene in the order "
    "given (default: each scene's ACQUISITION_DATE tag, or the date in its file "
    "or folder name, e.g. …_20240420T033121_B02.tif). Implies a series.",
)
@click.option(
    "--min-persist",
    type=int,
    default=2,
    show_default=True,
    help="Time series: a conversion is confirmed when it holds on at least this many "
    "scenes after the reference, never reverting.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
def detect_cmd(
    scenes: tuple[Path, ...],
    mask_out,
    vector_out,
    store,
    method,
    model,
    threshold,
    mmu,
    tile,
    tta,
    dask_scheduler,
    rules,
    force,
    dates,
    min_persist,
    quiet,
) -> None:
    """Detect land-cover change between BEFORE and AFTER, or over a time series of scenes.

    Each scene: a multi-band GeoTIFF, or a folder of per-band GeoTIFFs whose names end in
    the Sentinel-2 band (…_B02.tif, …_B8A.tif); 20/60 m bands are resampled to the 10 m grid
    and AFTER is put on BEFORE's grid.

    Time series (three or more scenes, in any order, or --dates): the scenes are sorted by
    date (tags, names or --dates) and must be one product (same sensor, processing level,
    bands and resolution) and overlap. The latest is compared with the earlier scene of the
    same season of an earlier year (day of year within 45 days), or else the one closest in
    vegetation state (NDVI), so a paddy between crops is not a conversion; a conversion
    (built-up appearing) is kept only when it persists on --min-persist scenes after the
    reference and never reverts (docs/land.md, "Seasons and time series"). Scenes that are
    all cloud are left out; fewer than two usable dates is an error.

    With --store, running the same pair again (same contents, method, model and parameters)
    updates the stored run instead of adding a duplicate: one alert per parcel and run, and
    the reviews of alerts that are raised again are kept.
    """
    from gis.alerts import load_rules
    from gis.change.detect import DetectionConfig, detect_changes

    if force and not store:
        raise click.UsageError("--force only applies with --store (it stores a new run).")
    settings = LandSettings()
    config = DetectionConfig(
        method=method or settings.detector,
        model_dir=settings.model_dir,
        model_path=model,
        threshold=threshold,
        tile=tile,
        min_mapping_unit_m2=mmu,
        tta=settings.tta if tta is None else tta,
        dask_scheduler=dask_scheduler or settings.dask_scheduler,
    )
    series = len(scenes) > 2 or dates is not None
    if len(scenes) < 2:
        raise click.UsageError("give BEFORE AFTER, or three or more scenes of a time series.")
    if len(scenes) == 2:
        params = {**config.as_dict(), "before": str(scenes[0]), "after": str(scenes[1])}
    else:
        params = {**config.as_dict(), "scenes": [str(p) for p in scenes]}
    engine = None
    try:
        ruleset = load_rules(rules or settings.rules_file) if store else None
    except IocError as exc:
        raise _fail(exc) from exc
    if store:
        engine = _engine()
        try:
            with _connect(engine):
                pass
        except Exception as exc:  # connection problems: one line
            raise click.ClickException(f"database unavailable: {str(exc).splitlines()[0]}") from exc
    try:
        if series:
            from gis.change.series import detect_series, parse_dates

            result = detect_series(
                scenes,
                config,
                parse_dates(dates, len(scenes)),
                mask_out=mask_out,
                progress=_progress_printer(not quiet),
                min_persist=min_persist,
            )
        else:
            result = detect_changes(
                scenes[0],
                scenes[1],
                config,
                mask_out=mask_out,
                progress=_progress_printer(not quiet),
            )
        if vector_out:
            write_geojson(result, vector_out)
        summary = result.stats
        if store:
            from gis.change.store import store_run

            stored = store_run(engine, result, ruleset, force=force)
            summary = {**summary, **stored}
    except IocError as exc:
        if store:
            _record_failure(engine, config.method, params, str(exc))
        raise _fail(exc) from exc
    except Exception as exc:
        if store:
            _record_failure(engine, config.method, params, f"{type(exc).__name__}: {exc}")
        raise
    stored_text = ""
    if store and summary.get("updated"):
        stored_text = (
            f"; updated run {summary['run_id']} (already stored: same scenes, method "
            f"and parameters; --force stores a new one) with {summary['alerts']} "
            "parcel alerts"
        )
        if summary.get("reviewed_superseded"):
            stored_text += (
                f", {summary['reviewed_superseded']} reviewed alerts no longer "
                "raised kept as superseded"
            )
    elif store:
        stored_text = f"; stored as run {summary['run_id']} with {summary['alerts']} parcel alerts"
    if series:
        info = result.stats["series"]
        usable = sum(1 for sc in info["scenes"] if sc["usable"])
        click.echo(
            f"series of {len(info['scenes'])} scenes ({usable} usable): compared "
            f"{info['target']} ({info['target_date']}) with {info['reference']} "
            f"({info['reference_date']}: {info['reason']}); conversions: {info['confirmed']} "
            f"confirmed, {len(info['pending'])} pending (latest date only), "
            f"{len(info['reverted'])} reverted"
        )
        if info["dates_after_reference"] < info["min_persist"]:
            click.echo(
                f"note: only {info['dates_after_reference']} usable scene(s) after the "
                f"reference, fewer than --min-persist {info['min_persist']}: no conversion can "
                "be confirmed yet; add later scenes or lower --min-persist.",
                err=True,
            )
    click.echo(
        f"{result.method} ({result.model_version}): {summary['polygons']} change polygons, "
        f"{summary['changed_area_m2']:.0f} m² changed ({summary['change_fraction'] * 100:.2f} % "
        f"of valid pixels), {summary['megapixels_per_s']:.2f} Mpx/s" + stored_text
    )


def _record_failure(engine, method: str, params: dict, error: str) -> None:
    from gis.change.store import record_failed_run

    try:
        run_id = record_failed_run(engine, method, params, error)
        click.echo(f"run {run_id} recorded as failed", err=True)
    except Exception as exc:  # the database itself may be the problem
        click.echo(f"could not record the failed run: {str(exc).splitlines()[0]}", err=True)


def write_geojson(result, path: Path) -> None:
    """Write change polygons as an RFC 7946 GeoJSON file (temp file, then rename)."""
    import numpy as np
    import shapely

    from gis.crs import transform_geometries

    feats = result.features
    geoms = np.array([f["geometry"] for f in feats], dtype=object)
    if len(geoms):
        geoms = transform_geometries(geoms, result.grid.crs.to_wkt(), 4326)
    out = {"type": "FeatureCollection", "features": []}
    for f, g in zip(feats, geoms, strict=True):
        props = {k: v for k, v in f.items() if k != "geometry"}
        out["features"].append(
            {
                "type": "Feature",
                "id": f["id"],
                "properties": props,
                "geometry": json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-7))),
            }
        )
    out["properties"] = {
        "before": str(result.before.path),
        "after": str(result.after.path),
        "method": result.method,
        "model_version": result.model_version,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------- alerts
ALERT_COLUMNS = (
    "id",
    "run_id",
    "commune_code",
    "old_commune_code",
    "sheet_number",
    "parcel_number",
    "legal_code",
    "rule",
    "rules",
    "severity",
    "changed_area_m2",
    "changed_fraction",
    "observed_from",
    "observed_to",
    "review_status",
    "created_at",
    "superseded_at",
)


@land.command("alerts")
@click.option("--run", "run_id", type=int, help="Only alerts of this detection run.")
@click.option("--commune", help="Only alerts in this commune (current or pre-2025 code).")
@click.option("--severity", type=click.Choice(["low", "medium", "high"]))
@click.option("--status", type=click.Choice(REVIEW_STATUSES))
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Created on or after DATE.")
@click.option("--limit", type=int, help="At most N alerts.")
@click.option("--summary", is_flag=True, help="Counts per commune and severity instead.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "geojson"]),
    default="table",
    show_default=True,
)
@click.option("--output", type=click.Path(path_type=Path), help="Write to FILE instead of stdout.")
def alerts_cmd(run_id, commune, severity, status, since, limit, summary, fmt, output) -> None:
    """List or export parcel alerts (table, CSV, JSON or GeoJSON), or summarise them."""
    from gis.alerts import list_alerts, summarise_alerts

    try:
        with _connect(_engine()) as conn:
            if summary:
                rows = summarise_alerts(conn, run_id)
                columns = (
                    "commune_code",
                    "commune_name",
                    "high",
                    "medium",
                    "low",
                    "total",
                    "changed_area_m2",
                )
            else:
                rows = list_alerts(
                    conn,
                    run_id=run_id,
                    commune=commune,
                    severity=severity,
                    status=status,
                    since=since.date() if since else None,
                    limit=limit,
                )
                columns = ALERT_COLUMNS
    except IocError as exc:
        raise _fail(exc) from exc
    text_out = _render(rows, columns, fmt)
    if output:
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        tmp.write_text(text_out, encoding="utf-8")
        os.replace(tmp, output)
        click.echo(f"{len(rows)} {'communes' if summary else 'alerts'} written to {output}")
    else:
        click.echo(text_out, nl=False)


def _plain(v):
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if v is None:
        return None
    if isinstance(v, int | float | str):
        return v
    return float(v) if hasattr(v, "__float__") else str(v)


def _render(rows: list[dict], columns: tuple[str, ...], fmt: str) -> str:
    import io

    if fmt == "json":
        return (
            json.dumps(
                [{c: _plain(r.get(c)) for c in columns} for r in rows], ensure_ascii=False, indent=1
            )
            + "\n"
        )
    if fmt == "geojson":
        feats = [
            {
                "type": "Feature",
                "id": r.get("id"),
                "geometry": json.loads(r["geometry"]) if r.get("geometry") else None,
                "properties": {c: _plain(r.get(c)) for c in columns},
            }
            for r in rows
        ]
        return (
            json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False) + "\n"
        )
    buf = io.StringIO()
    if fmt == "csv":
        w = csv.writer(buf)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _plain(r.get(c)) for c in columns])
        return buf.getvalue()
    if not rows:
        return "no alerts\n"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    buf.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        buf.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return buf.getvalue()


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, float):
        return f"{v:.3f}" if v < 1 else f"{v:.1f}"
    return str(v)


@land.command("review")
@click.argument("alert_id", type=int)
@click.option(
    "--status",
    type=click.Choice(REVIEW_STATUSES),
    required=True,
    help="confirmed or dismissed after a field check; new puts it back to unreviewed.",
)
@click.option("--reviewer", required=True, help="Who reviewed (name or account).")
@click.option("--note", help="Field note.")
def review_cmd(alert_id: int, status: str, reviewer: str, note: str | None) -> None:
    """Set the review status of a parcel alert (after a field check).

    The same operation as the API's review write (gis.review.review_alert): the change and its
    audit row (actor: the system user, channel cli) are stored in one transaction.
    """
    import getpass

    from gis.audit import Actor
    from gis.cadastre import transaction
    from gis.review import review_alert

    try:
        with transaction(_engine()) as conn:
            review = review_alert(
                conn, alert_id, status, reviewer, note, actor=Actor(getpass.getuser(), None, "cli")
            )
    except IocError as exc:
        raise _fail(exc) from exc
    click.echo(f"alert {alert_id}: {review.review_status} by {review.reviewer}")


@land.command("report")
@click.argument("alert_id", type=int, required=False)
@click.option("--commune", help="A commune's summary instead (current or pre-2025 code).")
@click.option(
    "--format", "fmt", type=click.Choice(["pdf", "html"]), default="pdf", show_default=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output file ('-' for stdout); default alert-ID.FORMAT or commune-CODE.FORMAT here.",
)
def report_cmd(alert_id: int | None, commune: str | None, fmt: str, out: Path | None) -> None:
    """An A4 report in Vietnamese: one parcel alert (ALERT_ID) or a commune's alerts (--commune).

    The alert report shows the parcel and its owner as recorded, the legal land-use code, the
    change, the scenes, the before/after image chips, a locator map, the rules that fired and
    the review history; PDF is printed by headless Chromium (gis.report).
    """
    from gis import report

    if (alert_id is None) == (commune is None):
        raise click.UsageError("give an ALERT_ID or --commune CODE (one of them).")
    try:
        with _connect(_engine()) as conn:
            data = (
                report.alert_report(conn, alert_id)
                if alert_id is not None
                else report.commune_report(conn, commune)
            )
        html = report.render_html(data)
        content = html.encode("utf-8") if fmt == "html" else report.render_pdf(html)
    except IocError as exc:
        raise _fail(exc) from exc
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(content)
        return
    target = out or Path(
        f"alert-{alert_id}.{fmt}" if alert_id is not None else f"commune-{commune}.{fmt}"
    )
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        error = click.ClickException(f"cannot write {target}: {exc.strerror}.")
        error.exit_code = 2
        raise error from exc
    click.echo(
        f"{'alert ' + str(alert_id) if alert_id is not None else 'commune ' + commune} "
        f"report written to {target} ({len(content) // 1024} KB)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(land())
