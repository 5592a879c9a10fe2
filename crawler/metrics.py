"""Prometheus counters of the crawl, per outlet (served at the API's ``/metrics``).

``ioc_crawl_pages_total{outlet}`` (responses received: feeds, sections, articles),
``ioc_crawl_items_total{outlet,outcome}`` (articles stored, duplicates, spooled while the
database was down), ``ioc_crawl_errors_total{outlet,stage}`` (fetch errors, pages that failed a
pipeline stage), ``ioc_articles_scored_total{outlet}``.

Crawls run in their own process (Twisted's reactor cannot restart): with
``PROMETHEUS_MULTIPROC_DIR`` set by ``ioc run`` (and inherited) their counts reach the API's
``/metrics``; otherwise they stay in the crawl's process. Counting never fails a crawl.
"""

from __future__ import annotations

import functools
import logging
from types import SimpleNamespace

log = logging.getLogger(__name__)


@functools.cache
def _metrics() -> SimpleNamespace | None:
    try:
        from prometheus_client import Counter
    except ImportError:  # counting is optional
        return None
    return SimpleNamespace(
        pages=Counter("ioc_crawl_pages_total", "Crawl responses received by outlet.", ["outlet"]),
        items=Counter(
            "ioc_crawl_items_total",
            "Crawled articles by outlet and outcome.",
            ["outlet", "outcome"],
        ),
        errors=Counter(
            "ioc_crawl_errors_total", "Crawl errors by outlet and stage.", ["outlet", "stage"]
        ),
        scored=Counter(
            "ioc_articles_scored_total", "Articles scored (sentiment, topic) by outlet.", ["outlet"]
        ),
    )


def _outlet(name: object) -> str:
    return str(name) if name else "unknown"


def count(kind: str, outlet: object, **labels: str) -> None:
    """Add one to counter ``kind`` (pages, items, errors, scored) for ``outlet``."""
    m = _metrics()
    if m is None:
        return
    try:
        getattr(m, kind).labels(outlet=_outlet(outlet), **labels).inc()
    except Exception as exc:  # noqa: BLE001 - a metric must never stop a crawl
        log.debug("metric %s not counted: %s", kind, exc)
