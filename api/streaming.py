"""FeatureCollections written as byte chunks while the features arrive (the response is never
built whole in memory): :func:`iter_collection` for a page already read, :func:`iter_streamed`
for rows streamed from PostgreSQL (single-row mode) with the look-ahead row telling whether
there is a next page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from api.service import Page


def iter_streamed(
    rows: Iterator[tuple[Any, str]], limit: int, head: dict, tail_of
) -> Iterator[bytes]:
    """A FeatureCollection written while the rows arrive; ``tail_of(returned, has_more, last_id)``
    gives the keys written after the features (numberReturned, links)."""
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    yield (opening + (", " if head else "") + '"features":[').encode()
    returned, has_more, last_id = 0, False, None
    chunk: list[str] = []
    size = 0
    for row_id, feature in rows:
        if returned == limit:
            has_more = True  # the look-ahead row
            break
        chunk.append(("," if returned else "") + feature)
        returned += 1
        last_id = row_id
        size += len(feature)
        if size > 256_000:
            yield "".join(chunk).encode()
            chunk, size = [], 0
    if hasattr(rows, "close"):
        rows.close()
    if chunk:
        yield "".join(chunk).encode()
    yield ("]," + json.dumps(tail_of(returned, has_more, last_id), ensure_ascii=False)[1:]).encode()


def iter_collection(page: Page, head: dict, tail: dict) -> Iterator[bytes]:
    """A FeatureCollection as byte chunks: head keys, the features, then tail keys."""
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    yield (opening + (", " if head else "") + '"features":[').encode()
    chunk: list[str] = []
    size = 0
    for i, f in enumerate(page.features):
        chunk.append(("," if i else "") + f)
        size += len(f)
        if size > 256_000:
            yield "".join(chunk).encode()
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk).encode()
    closing = json.dumps(tail, ensure_ascii=False)[1:]
    yield ("]," + closing if tail else "]}").encode()
