"""Choosing the BEFORE scene of a pair: same season, least cloud, enough overlap and gap."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely

from gis.intake.pairing import Candidate, choose_before, season_distance
from gis.intake.settings import IntakeSettings

S = IntakeSettings(_env_file=None)
BOX = shapely.box(105.9, 20.4, 106.0, 20.5)


def c(i: int, day: str, cloud: float, footprint=BOX) -> Candidate:
    when = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return Candidate(i, when, cloud, f"/scenes/{i}", footprint, f"scene{i}")


@pytest.mark.parametrize(
    ("a", "b", "days"),
    [
        ("2025-04-18", "2024-04-20", 2),
        ("2025-01-05", "2024-12-28", 8),  # around the year end
        ("2025-04-18", "2024-10-15", 180),
        ("2025-03-01", "2024-02-29", 1),
    ],
)
def test_season_distance(a, b, days):
    assert season_distance(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) == days


def test_least_clouded_scene_of_the_same_season_wins():
    after = c(1, "2025-04-18", 0.05)
    pool = [
        after,
        c(2, "2024-04-20", 0.10),
        c(3, "2024-04-25", 0.02),
        c(4, "2024-10-15", 0.0),
        c(5, "2023-04-10", 0.02),
    ]
    # 3 and 5 tie on cloud: the closer day of the year (25 April: 7 days) wins
    assert choose_before(after, pool, S).id == 3


def test_other_season_too_recent_or_later_scenes_are_never_paired():
    after = c(1, "2025-04-18", 0.0)
    pool = [after, c(2, "2024-10-15", 0.0), c(3, "2025-04-08", 0.0), c(4, "2026-04-18", 0.0)]
    assert choose_before(after, pool, S) is None


def test_consecutive_dates_of_the_same_season_pair_when_far_enough_apart():
    after = c(1, "2025-05-20", 0.0)
    pool = [after, c(2, "2025-04-10", 0.1)]  # 40 days: same season, past the 30-day gap
    assert choose_before(after, pool, S).id == 2
    assert choose_before(after, pool, S.model_copy(update={"min_gap_days": 45})) is None


def test_scenes_that_hardly_overlap_are_not_paired():
    after = c(1, "2025-04-18", 0.0)
    far = c(2, "2024-04-20", 0.0, shapely.box(105.99, 20.49, 106.5, 20.9))
    near = c(3, "2024-04-22", 0.3, shapely.box(105.91, 20.41, 106.01, 20.51))
    assert choose_before(after, [after, far, near], S).id == 3
