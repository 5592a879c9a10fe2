"""``ioc demo`` stage of the API: generate the pygeoapi configuration from the loaded data,
validate it against pygeoapi's schema and write it (with ``${IOC_DATABASE_URL}``, never the
secret) to the state directory."""

from __future__ import annotations

from typing import Any

from api.config import build_config, collect_table_infos, validate, write_config
from api.settings import ApiSettings
from gis.settings import LandSettings


def demo_stage(ctx: Any) -> None:
    """Run with the ``ioc.demo.DemoContext`` (duck-typed: api never imports ioc): uses
    ``engine``, ``state_dir`` and ``echo``."""
    settings = ApiSettings()
    infos = collect_table_infos(ctx.engine)
    from api.imagery_routes import scene_coverages

    # stored imagery (OGC API - Coverages): the latest runs' scenes and those of open alerts
    coverages = scene_coverages(ctx.engine, settings.coverage_runs)
    config = build_config(
        infos,
        settings,
        land=LandSettings(),  # read here, at the edge
        coverages=coverages,
    )
    validate(config)
    path = write_config(config, settings.config_file or ctx.state_dir / "api" / "pygeoapi.yml")
    for cid, info in infos.items():
        rows = max(int(info.estimated_rows), 0) if info.estimated_rows > 200_000 else None
        if rows is None:
            with ctx.engine.connect() as conn:
                from sqlalchemy import text

                rows = conn.execute(text(f'SELECT count(*) FROM "{info.spec.relation}"')).scalar()
        ctx.echo(
            f"  {cid}: {rows} features" + (f", bbox {info.bbox_wgs84}" if info.bbox_wgs84 else "")
        )
    if coverages:
        ctx.echo(
            f"  imagery: {len(coverages)} coverage collections ({', '.join(coverages)}); "
            "tiles at /imagery/{scene}/tiles/{z}/{x}/{y}.png, runs at /imagery/runs/{run}"
        )
    ctx.echo(f"  pygeoapi configuration validated and written to {path}")
