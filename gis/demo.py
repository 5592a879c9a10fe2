"""``ioc demo`` land stage: import the sample cadastre, detect change on the sample image pair
with the CNN, store the run, its changes and parcel alerts, and summarise them."""

from __future__ import annotations

from typing import Any


def demo_stage(ctx: Any) -> None:
    """Run the land part of the demo on ``ctx.data_dir / 'land'`` (see data/README.md).

    ``ctx`` is ``ioc.demo.DemoContext`` (engine, database_url, state_dir, data_dir, echo), used
    duck-typed: ioc imports gis, never the other way round.
    """
    from gis.alerts import load_rules, summarise_alerts
    from gis.cadastre import import_cadastre, transaction
    from gis.change.detect import DetectionConfig, detect_changes
    from gis.change.store import store_run

    land_dir = ctx.data_dir / "land"
    report = import_cadastre(ctx.engine, land_dir / "sample_cadastre.gpkg")
    ctx.echo("  cadastre: " + report.summary())

    out_dir = ctx.state_dir / "demo" / "land"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = detect_changes(
        land_dir / "before",
        land_dir / "after_T48QXH_20250418.tif",
        DetectionConfig(),
        mask_out=out_dir / "change_mask.tif",
    )
    from gis.cli_land import write_geojson

    write_geojson(result, out_dir / "changes.geojson")
    stored = store_run(ctx.engine, result, load_rules(), state_dir=ctx.state_dir)
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(result.stats["by_kind"].items()))
    ctx.echo(
        f"  detection ({result.method}, {result.model_version}): run {stored['run_id']}, "
        f"{stored['changes']} change polygons ({kinds}), {stored['alerts']} parcel alerts "
        f"{stored['alerts_by_severity']}; mask and GeoJSON in {out_dir}"
    )
    ev = stored["evidence"]
    ctx.echo(
        f"  imagery: a COG per scene in {ctx.state_dir / 'imagery' / 'cog'} "
        f"({ev['cogs_s']} s), {ev['chips']} alert chips in "
        f"{ctx.state_dir / 'evidence' / ('run-' + str(stored['run_id']))} ({ev['chips_s']} s); "
        f"before/after side by side at /imagery/runs/{stored['run_id']}"
    )
    with transaction(ctx.engine) as conn:
        for row in summarise_alerts(conn, stored["run_id"]):
            ctx.echo(
                f"  alerts in {row['commune_code']} {row['commune_name'] or ''}: "
                f"{row['high']} high, {row['medium']} medium, {row['low']} low, "
                f"{row['changed_area_m2']} m² changed"
            )
