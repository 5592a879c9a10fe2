"""Property-based tests (hypothesis) of process execution against the running server (a real
uvicorn process on a real PostGIS): random execute bodies and random inputs answer 400 with an
OGC exception naming what is wrong, or 200 when they are valid, never 500, and no answer shows
a server path. Validity is judged independently of the server's code: by the JSON schemas the
server publishes in ``/processes/{id}`` (and the two rules they cannot express: exactly one of
records/article_ids, digest dates within the served range). The number of bad inputs tried is
printed at the end of the module."""

from __future__ import annotations

import collections
import datetime as dt
import json
import string
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from tests.api.conftest import BEARER

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ("land-change-detection", "sentiment-scoring", "daily-digest")
TRIED: collections.Counter = collections.Counter()
HYPOTHESIS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    lines = [f"  {k}: {v}" for k, v in sorted(TRIED.items())]
    text = "process inputs tried against the server:\n" + "\n".join(lines)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + text)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, headers=BEARER, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def oracles(http) -> dict[str, Draft202012Validator]:
    """Validators of each process's inputs, built from the descriptions the server publishes."""
    out = {}
    for pid in PROCESSES:
        inputs = http.get(f"/processes/{pid}?f=json").json()["inputs"]
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: v["schema"] for k, v in inputs.items()},
            "required": [k for k, v in inputs.items() if v.get("minOccurs", 1) >= 1],
        }
        out[pid] = Draft202012Validator(schema, format_checker=FormatChecker())
    return out


def _valid(oracles, pid: str, body) -> bool:
    if not isinstance(body, dict) or set(body) - {"inputs", "outputs", "response", "subscriber"}:
        return False
    if set(body) != {"inputs"} or not isinstance(body["inputs"], dict):
        return False  # outputs/response/subscriber are never generated valid
    inputs = body["inputs"]
    if not oracles[pid].is_valid(inputs):
        return False
    if pid == "land-change-detection":
        return False  # generated paths never exist under the data folders
    if pid == "sentiment-scoring":
        return ("records" in inputs) != ("article_ids" in inputs)
    if pid == "daily-digest":
        from api.processes import DIGEST_DAYS

        return DIGEST_DAYS[0].isoformat() <= inputs["date"] <= DIGEST_DAYS[1].isoformat()
    return True


def _check(http, oracles, pid: str, body, surface: str) -> None:
    content = json.dumps(body, ensure_ascii=False).encode()
    r = http.post(
        f"/processes/{pid}/execution", content=content, headers={"Content-Type": "application/json"}
    )
    expected = 200 if _valid(oracles, pid, body) else 400
    assert r.status_code == expected, (pid, body, r.status_code, r.text[:300])
    assert str(REPO) not in r.text and "Traceback" not in r.text, r.text[:300]
    if expected == 400:
        doc = r.json()
        assert {"code", "description"} <= set(doc) and doc["description"], doc
        TRIED[f"{surface}, bad (400)"] += 1
    else:
        TRIED[f"{surface}, valid (200)"] += 1


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@HYPOTHESIS
@given(
    pid=st.sampled_from(PROCESSES),
    body=json_values | st.fixed_dictionaries({"inputs": json_values}),
)
def test_random_execute_bodies_answer_400_never_500(http, oracles, pid, body):
    _check(http, oracles, pid, body, "random execute bodies")


def _nonexistent_path(value: str) -> bool:
    try:
        return not (REPO / value.strip()).resolve().exists()
    except (OSError, ValueError, RuntimeError):
        return True


paths = st.sampled_from(
    [
        "data/nope.tif",
        "/etc/passwd",
        "../../etc/shadow",
        "data/land/none_B02.tif",
        "~/x.tif",
        "data/../../x",
        "",
        " ",
        "\u0000",
    ]
) | st.text(string.printable, max_size=40).filter(_nonexistent_path)
land_inputs = st.fixed_dictionaries(
    {},
    optional={
        "before": paths | scalars,
        "after": paths | scalars,
        "method": st.sampled_from(["cnn", "gbm", "cva", "CVA", "svm", ""]) | scalars,
        "threshold": st.floats(-1, 2, allow_nan=False) | scalars,
        "store": st.booleans() | scalars,
        "extra": scalars,
    },
)
records = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers(-5, 10**6) | st.text(max_size=8) | scalars,
            "text": st.text("abc đường xã cháy lớn ,.", min_size=0, max_size=60) | scalars,
            "title": st.text(max_size=10),
        },
    ),
    max_size=4,
)
sentiment_inputs = st.fixed_dictionaries(
    {},
    optional={
        "records": records | scalars,
        "article_ids": st.lists(st.integers(-3, 2**64) | scalars, max_size=4) | scalars,
        "ids": scalars,
    },
)
valid_sentiment = st.fixed_dictionaries(
    {
        "records": st.lists(
            st.fixed_dictionaries(
                {"text": st.text("abc đường xã cháy lớn ,.", min_size=1, max_size=60)},
                optional={"id": st.integers(0, 10**6) | st.text(max_size=8)},
            ),
            min_size=1,
            max_size=3,
        )
    }
) | st.fixed_dictionaries(
    {"article_ids": st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=4)}
)
sentiment_inputs = valid_sentiment | sentiment_inputs
valid_digest = st.fixed_dictionaries(
    {"date": st.dates(dt.date(1970, 1, 1), dt.date(2999, 12, 31)).map(lambda d: d.isoformat())},
    optional={"format": st.sampled_from(["json", "html"])},
)
digest_inputs = valid_digest | st.fixed_dictionaries(
    {},
    optional={
        "date": st.dates().map(lambda d: d.isoformat()) | st.text(max_size=12) | scalars,
        "format": st.sampled_from(["json", "html", "pdf", "JSON"]) | scalars,
        "lang": scalars,
    },
)


@HYPOTHESIS
@given(inputs=land_inputs)
def test_land_change_inputs(http, oracles, inputs):
    _check(
        http, oracles, "land-change-detection", {"inputs": inputs}, "land-change-detection inputs"
    )


@HYPOTHESIS
@given(inputs=sentiment_inputs)
def test_sentiment_scoring_inputs(http, oracles, inputs):
    _check(http, oracles, "sentiment-scoring", {"inputs": inputs}, "sentiment-scoring inputs")


@HYPOTHESIS
@given(inputs=digest_inputs)
def test_daily_digest_inputs(http, oracles, inputs):
    _check(http, oracles, "daily-digest", {"inputs": inputs}, "daily-digest inputs")
