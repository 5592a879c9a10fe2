"""Render time of the land reports (``ioc land report``): per alert and per commune, HTML and PDF.

Sets up the demo's land data in a database of its own (the embedded PostGIS in a state folder:
the shipped administrative units, the sample cadastre, the CNN run on the sample pair with its
alerts, and their evidence chips when the evidence module stores them), then renders every
alert's report and every commune's summary ``--repeat`` times in HTML and PDF (headless
Chromium) and prints the median and maximum wall time of each kind, and the PDFs' sizes.

    nice -n 10 .venv/bin/python benchmarks/land_report.py [--repeat 3] [--state-dir DIR]
    nice -n 10 .venv/bin/python benchmarks/land_report.py --database-url URL   # existing data

With ``--database-url`` nothing is loaded: the reports of the alerts already stored are timed
(for example the demo's: ``--database-url "$(ioc db url)"``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def demo_database(state_dir: Path) -> str:
    """A database with the demo's land data (loaded once per state folder)."""
    from sqlalchemy import text

    from gis.admin_units import load_reference_units
    from gis.db import migrate
    from gis.db.embedded import EmbeddedCluster
    from gis.db.session import make_engine
    from gis.demo import demo_stage

    cluster = EmbeddedCluster(state_dir, db_name="ioc_report_bench")
    cluster.initialise()
    cluster.start()
    cluster.ensure_database()
    url = cluster.url()
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        alerts = conn.execute(text("SELECT count(*) FROM parcel_alerts")).scalar_one()
    if not alerts:
        log("loading the administrative units and running the demo's land stage")
        os.environ["IOC_STATE_DIR"] = str(state_dir)  # scene COGs and chips go there
        load_reference_units(engine, REPO / "data" / "admin")
        demo_stage(
            SimpleNamespace(
                engine=engine,
                database_url=url,
                state_dir=state_dir,
                data_dir=REPO / "data",
                echo=log,
            )
        )
    engine.dispose()
    return url


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="time the reports of an existing database")
    parser.add_argument(
        "--state-dir", type=Path, help="embedded cluster folder (default: a temp one)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from sqlalchemy import text

    from gis import report
    from gis.db.session import make_engine

    tmp = None
    url = args.database_url
    if url is None:
        state = args.state_dir
        if state is None:
            tmp = tempfile.TemporaryDirectory(prefix="ioc-report-bench-")
            state = Path(tmp.name)
        url = demo_database(state)
    engine = make_engine(url)
    with engine.connect() as conn:
        alert_ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM parcel_alerts WHERE superseded_at IS NULL ORDER BY id")
            )
        ]
        communes = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT DISTINCT commune_code FROM parcel_alerts WHERE commune_code IS NOT NULL "
                    "AND superseded_at IS NULL ORDER BY 1"
                )
            )
        ]
        with_chips = sum(report.alert_report(conn, a)["evidence"]["available"] for a in alert_ids)
    log(
        f"{len(alert_ids)} alerts ({with_chips} with imagery chips), {len(communes)} communes, "
        f"repeat {args.repeat}; Chromium: {report.find_chromium()}"
    )

    figures: dict[str, list[float]] = {}
    sizes: dict[str, list[int]] = {}
    for kind, ids, build in (
        ("alert", alert_ids, report.alert_report),
        ("commune", communes, report.commune_report),
    ):
        for key in ids:

            def data(key=key, build=build):
                with engine.connect() as conn:
                    return build(conn, key)

            t_data, rep = timed(data, args.repeat)
            t_html, _ = timed(lambda rep=rep: report.render_html(rep), args.repeat)
            t_pdf, pdf = timed(
                lambda rep=rep: report.render_pdf(report.render_html(rep)), args.repeat
            )
            figures.setdefault(f"{kind}: data (SQL, map, chips)", []).extend(t_data)
            figures.setdefault(f"{kind}: data + HTML", []).extend(
                [d + h for d, h in zip(t_data, t_html, strict=True)]
            )
            figures.setdefault(f"{kind}: data + HTML + PDF", []).extend(
                [d + p for d, p in zip(t_data, t_pdf, strict=True)]
            )
            sizes.setdefault(kind, []).append(len(pdf))
    engine.dispose()

    print()
    print(f"{'what':34} {'n':>4} {'median s':>9} {'max s':>7}")
    for name, values in figures.items():
        print(f"{name:34} {len(values):4d} {statistics.median(values):9.3f} {max(values):7.3f}")
    for kind, values in sizes.items():
        print(
            f"PDF size per {kind}: median {statistics.median(values) / 1024:.0f} KB, "
            f"max {max(values) / 1024:.0f} KB"
        )
    if tmp is not None:
        from gis.db.embedded import EmbeddedCluster

        EmbeddedCluster(Path(tmp.name), db_name="ioc_report_bench").stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
