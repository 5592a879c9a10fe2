"""OGC API Processes: the three contract ids, jobs persisted in PostgreSQL, tokens required,
inputs validated against the declared schemas before any job exists, no server path in any
error, and the land settings the CLI honours honoured by the land-change process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.api.conftest import BEARER, count
from tests.api.test_features import assert_ogc_error

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"
BEFORE, AFTER = LAND / "before", LAND / "after_T48QXH_20250418.tif"


def test_the_three_processes_are_described(client):
    doc = client.get("/processes?f=json").json()
    assert {"land-change-detection", "sentiment-scoring", "daily-digest"} <= {
        p["id"] for p in doc["processes"]
    }
    one = client.get("/processes/land-change-detection?f=json").json()
    assert "async-execute" in one["jobControlOptions"]
    assert {"before", "after"} <= set(one["inputs"])
    assert one["inputs"]["threshold"]["schema"]["maximum"] == 1
    execution = client.get("/openapi?f=json").json()["paths"][
        "/processes/land-change-detection/execution"
    ]["post"]
    assert execution["security"] == [{"bearer": []}] and "officer" in execution["description"]
    assert {"400", "401", "403"} <= set(execution["responses"])
    assert_ogc_error(client.get("/processes/nope?f=json"), 404)
    assert_ogc_error(execute(client, "nope", {"inputs": {}}), 404, "nope")
    assert_ogc_error(client.delete("/jobs/nope", headers=BEARER), 404, "nope")


def wait_for(client, location: str, seconds: float = 60) -> dict:
    deadline = time.time() + seconds
    while True:
        job = client.get(location + "?f=json").json()
        if job["status"] in ("successful", "failed", "dismissed") or time.time() > deadline:
            return job
        time.sleep(0.2)


def execute(client, process_id: str, body, headers=None, **kwargs):
    return client.post(
        f"/processes/{process_id}/execution",
        json=body,
        headers={**BEARER, **(headers or {})},
        **kwargs,
    )


def test_an_async_job_is_persisted_with_its_result(client, api_engine):
    r = execute(
        client, "daily-digest", {"inputs": {"date": "2025-07-02"}}, {"Prefer": "respond-async"}
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"].replace("http://testserver", "")
    job = wait_for(client, location)
    assert job["status"] == "successful", job
    job_id = location.rstrip("/").rsplit("/", 1)[-1]
    with api_engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT process_id, status, output IS NOT NULL FROM pygeoapi.jobs "
                "WHERE identifier = :i"
            ),
            {"i": job_id},
        ).one()
    assert tuple(row) == ("daily-digest", "successful", True)
    result = client.get(location + "/results?f=json")
    assert result.status_code == 200 and result.json()["value"]["date"] == "2025-07-02"
    assert_ogc_error(client.delete(location), 401)
    assert client.delete(location, headers=BEARER).status_code == 200


@pytest.mark.parametrize(
    "process_id, inputs, words",
    [
        # the probe of issue 12: a string for a boolean stored a run with 7 alerts
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "store": "no"},
            ["store", "boolean"],
        ),
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "threshold": 2},
            ["threshold", "at most 1"],
        ),
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "threshold": -0.1},
            ["threshold", "at least 0"],
        ),
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "threshold": "0.5"},
            ["threshold", "number"],
        ),
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "method": "svm"},
            ["method", "cnn"],
        ),
        (
            "land-change-detection",
            {"before": str(BEFORE), "after": str(AFTER), "colour": "red"},
            ["colour", "unknown"],
        ),
        ("land-change-detection", {"before": str(BEFORE)}, ["after", "required"]),
        ("land-change-detection", {"before": 7, "after": str(AFTER)}, ["before", "string"]),
        (
            "land-change-detection",
            {"before": "/nonexistent/before.tif", "after": str(AFTER)},
            ["before", "data folders"],
        ),
        (
            "land-change-detection",
            {"before": "data/nope.tif", "after": str(AFTER)},
            ["before", "does not exist"],
        ),
        ("daily-digest", {"date": 20250702}, ["date", "string"]),
        ("daily-digest", {"date": "02/07/2025"}, ["date", "yyyy-mm-dd"]),
        ("daily-digest", {"date": "2025-02-30"}, ["date", "yyyy-mm-dd"]),
        ("daily-digest", {"date": "0001-01-01"}, ["date", "between"]),
        ("daily-digest", {"date": "2025-07-02", "format": "pdf"}, ["format", "json"]),
        ("daily-digest", {}, ["date", "required"]),
        ("sentiment-scoring", {}, ["records", "article_ids"]),
        ("sentiment-scoring", {"records": [{"id": 1}]}, ["records[0]", "text"]),
        ("sentiment-scoring", {"records": [{"id": 1, "text": 5}]}, ["records[0].text", "string"]),
        ("sentiment-scoring", {"article_ids": ["7"]}, ["article_ids[0]", "integer"]),
        ("sentiment-scoring", {"article_ids": [1], "records": [{"text": "x"}]}, ["either"]),
    ],
)
def test_process_inputs_are_validated_before_any_job(client, api_engine, process_id, inputs, words):
    runs = count(api_engine, "SELECT count(*) FROM detection_runs")
    jobs = count(api_engine, "SELECT count(*) FROM pygeoapi.jobs")
    for prefer in ({}, {"Prefer": "respond-async"}):
        assert_ogc_error(execute(client, process_id, {"inputs": inputs}, prefer), 400, *words)
    assert count(api_engine, "SELECT count(*) FROM detection_runs") == runs
    assert count(api_engine, "SELECT count(*) FROM pygeoapi.jobs") == jobs


@pytest.mark.parametrize(
    "body, words",
    [
        ([{"inputs": {"date": "2025-07-02"}}], ["object", "array"]),  # was a 500
        ("2025-07-02", ["object", "string"]),
        (None, ["object", "null"]),
        ({"input": {"date": "2025-07-02"}}, ["input", "allowed"]),
        ({"inputs": [["date", "2025-07-02"]]}, ["inputs", "object"]),
        ({"inputs": {"date": "2025-07-02"}, "response": "pdf"}, ["response"]),
        (
            {"inputs": {"date": "2025-07-02"}, "subscriber": {"failedUri": "http://x"}},
            ["successuri"],
        ),
    ],
)
def test_malformed_execute_requests_are_400(client, body, words):
    r = client.post(
        "/processes/daily-digest/execution",
        content=json.dumps(body).encode(),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert_ogc_error(r, 400, *words)


def test_bodies_that_are_not_json_are_400(client):
    for content in (b"", b"{not json", b'{"inputs": {"date": NaN}}', b"\xff\xfe", b"[" * 100_000):
        r = client.post(
            "/processes/daily-digest/execution",
            content=content,
            headers={**BEARER, "Content-Type": "application/json"},
        )
        assert_ogc_error(r, 400)


def test_no_server_path_in_errors(client):
    """A file that is not a raster: the error names the file as the client gave it, never the
    server's absolute path (the probe saw /work/...)."""
    r = execute(
        client,
        "land-change-detection",
        {"inputs": {"before": "data/README.md", "after": "data/README.md", "store": False}},
    )
    assert r.status_code == 400, r.text
    assert "README.md" in r.text
    assert str(REPO) not in r.text and "/work/" not in r.text
    r = execute(
        client,
        "land-change-detection",
        {
            "inputs": {
                "before": str(REPO / "data" / "README.md"),
                "after": str(AFTER),
                "store": False,
            }
        },
        {"Prefer": "respond-async"},
    )
    assert r.status_code == 201, r.text
    job = wait_for(client, r.headers["location"].replace("http://testserver", ""))
    assert job["status"] == "failed" and "README.md" in job["message"]
    assert str(REPO) not in job["message"], job["message"]


def _app_client(api_database_url, api_engine, settings, land):
    from starlette.testclient import TestClient

    from api.app import create_app

    app = create_app(settings, api_database_url, engine=api_engine, land=land)
    return TestClient(app, raise_server_exceptions=False)


def test_the_land_process_honours_the_land_settings(
    api_database_url, api_engine, settings, tmp_path
):
    """Detector, model folder and rules file come from the land settings (IOC_LAND_*), as for
    ``ioc land detect``: passed in at app start, not read inside the process."""
    from gis.settings import LandSettings

    empty_models = tmp_path / "models"
    empty_models.mkdir()
    land = LandSettings(detector="gbm", model_dir=empty_models)
    inputs = {"before": str(BEFORE), "after": str(AFTER), "store": False}
    with _app_client(api_database_url, api_engine, settings, land) as c:
        r = execute(c, "land-change-detection", {"inputs": inputs})
        assert r.status_code == 400, r.text
        assert "change_gbm_v1.joblib" in r.text and "not found" in r.text
        assert str(tmp_path) not in r.text
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("rules: [{id: x}]\n")
    runs = count(api_engine, "SELECT count(*) FROM detection_runs")
    with _app_client(
        api_database_url, api_engine, settings, LandSettings(rules_file=bad_rules)
    ) as c:
        r = execute(c, "land-change-detection", {"inputs": {**inputs, "store": True}})
        assert r.status_code == 400, r.text
        assert "alert rules" in r.text and str(tmp_path) not in r.text
    assert count(api_engine, "SELECT count(*) FROM detection_runs") == runs


@pytest.mark.slow
def test_sentiment_scoring_and_result_stored_in_the_database(client, api_engine):
    """The sentiment model ships (nlp/models): scoring must work, not skip."""
    r = execute(
        client,
        "sentiment-scoring",
        {
            "inputs": {
                "records": [
                    {
                        "id": "1",
                        "text": "Cháy lớn tại khu công nghiệp Đồng Văn, nhiều người bị thương.",
                    }
                ]
            }
        },
        {"Prefer": "respond-async"},
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"].replace("http://testserver", "")
    job = wait_for(client, location, 120)
    assert job["status"] == "successful", job
    result = client.get(location + "/results?f=json")
    assert result.status_code == 200
    scored = result.json()["value"][0]
    assert scored["sentiment"]["label"] == "negative", scored
    # stored articles by id, synchronously
    article = count(api_engine, "SELECT min(id) FROM articles")
    r = execute(client, "sentiment-scoring", {"inputs": {"article_ids": [article]}})
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()["value"]] == [article]


def test_daily_digest_process_and_route(client):
    r = execute(client, "daily-digest", {"inputs": {"date": "2025-07-02"}})
    assert r.status_code == 200, r.text
    html = client.get("/digest/2025-07-02")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    js = client.get("/digest/2025-07-02?f=json")
    assert js.status_code == 200 and isinstance(js.json(), dict)
    assert_ogc_error(client.get("/digest/2025-13-45"), 400, "date")
    assert_ogc_error(client.get("/digest/0001-01-01"), 400, "between")  # was a 500 (overflow)
    assert_ogc_error(client.get("/digest/2025-07-02?f=doc"), 400, "f")
    assert_ogc_error(execute(client, "daily-digest", {"inputs": {"date": "x"}}), 400, "date")


@pytest.mark.slow
def test_land_change_detection_on_the_sample_images_stores_changes(client, api_engine):
    assert AFTER.exists() and BEFORE.is_dir(), "the sample imagery ships in data/land"
    changes_before = count(api_engine, "SELECT count(*) FROM land_changes")
    r = execute(
        client,
        "land-change-detection",
        {"inputs": {"before": str(BEFORE), "after": str(AFTER), "method": "cva"}},
        {"Prefer": "respond-async"},
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"].replace("http://testserver", "")
    job = wait_for(client, location, 300)
    assert job["status"] == "successful", job
    result = client.get(location + "/results?f=json").json()["value"]
    assert result["run_id"] and result["changes"] == count(
        api_engine, "SELECT count(*) FROM land_changes WHERE run_id = :r", r=result["run_id"]
    )
    assert (
        count(api_engine, "SELECT count(*) FROM land_changes") == changes_before + result["changes"]
    )
    # the new changes are published at once
    doc = client.get(f"/collections/land-changes/items?run_id={result['run_id']}&limit=1000").json()
    assert doc["numberMatched"] == result["changes"]


def test_a_database_failure_is_one_sentence_without_sql(tmp_path):
    """What a failed job stores (pygeoapi keeps the message): no SQL, no connection string."""
    from pygeoapi.process.base import ProcessorExecuteError

    from api.processes import SentimentScoringProcessor

    processor = SentimentScoringProcessor(
        {"name": "x", "database_url": "postgresql://ioc:secret@127.0.0.1:1/none"}
    )
    with pytest.raises(ProcessorExecuteError) as info:
        processor.execute({"article_ids": [1]})
    message = str(info.value)
    assert "database is not reachable" in message
    assert "secret" not in message and "SELECT" not in message and "127.0.0.1" not in message
    with pytest.raises(ProcessorExecuteError, match="Input 'article_ids' must be an array"):
        processor.execute({"article_ids": 1})
