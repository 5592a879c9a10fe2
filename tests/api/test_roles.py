"""Tokens carry roles: officer reviews alerts and runs land processes, media corrects sentiment
and runs NLP processes, admin does everything; the wrong role is a 403 naming the role needed,
no token a 401. Reviews and corrections are audited (who, role, when, old and new value). The
demo's tokens (one per role, generated per state directory) are the ones the app accepts."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from sqlalchemy import text

from api.auth import Principal, TokenStore, parse_entry
from api.errors import AuthenticationError, ConfigError, ForbiddenError
from tests.api.test_features import assert_ogc_error

pytestmark = pytest.mark.postgis


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-state")


@pytest.fixture(scope="module")
def tokens(demo_state) -> dict[str, dict]:
    """The tokens ``ioc demo`` prints: {role: {"Authorization": "Bearer ..."}}."""
    from ioc.demo import demo_tokens

    _, entries = demo_tokens(demo_state)
    return {role: {"Authorization": f"Bearer {token}"} for _, role, token in entries}


@pytest.fixture(scope="module")
def role_client(api_database_url, api_engine, demo_state, tokens):
    """An app configured the way ``ioc demo`` configures it when the operator set no token."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    settings = ApiSettings(
        tokens=[],
        tokens_file=demo_state / "api" / "demo-tokens",
        base_url="http://testserver",
        max_items=1000,
        default_items=10,
    )
    with TestClient(
        create_app(settings, api_database_url, engine=api_engine), raise_server_exceptions=False
    ) as c:
        yield c


def _audit(engine, table: str, target_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT actor, role, channel, action, old_value, new_value, note FROM audit_log "
                    "WHERE target_table = :t AND target_id = :i ORDER BY id"
                ),
                {"t": table, "i": target_id},
            ).mappings()
        ]


def _id(engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar())


def test_officers_review_alerts_media_may_not(role_client, api_engine, tokens):
    alert = _id(api_engine, "SELECT max(id) FROM parcel_alerts")
    url = f"/collections/parcel-alerts/items/{alert}"
    body = {"review_status": "confirmed", "reviewer": "Trần Thị B", "review_note": "đã xây nhà"}
    # the probe of issue 12: a media token reached alert review
    assert_ogc_error(role_client.patch(url, json=body, headers=tokens["media"]), 403, "officer")
    assert_ogc_error(role_client.patch(url, json=body), 401)
    assert_ogc_error(
        role_client.patch(url, content=b"{not json", headers=tokens["media"]), 403, "officer"
    )
    assert _audit(api_engine, "parcel_alerts", alert) == []
    r = role_client.patch(url, json=body, headers=tokens["officer"])
    assert r.status_code == 200, r.text
    [entry] = _audit(api_engine, "parcel_alerts", alert)
    assert (entry["actor"], entry["role"], entry["channel"], entry["action"]) == (
        "demo-officer",
        "officer",
        "api",
        "review_alert",
    )
    assert entry["old_value"]["review_status"] == "new"
    assert entry["new_value"]["review_status"] == "confirmed"
    assert entry["new_value"]["reviewer"] == "Trần Thị B" and entry["note"] == "đã xây nhà"
    r = role_client.patch(url, json={"review_status": "new"}, headers=tokens["admin"])
    assert r.status_code == 200 and r.json()["properties"]["reviewed_at"] is None
    assert [(e["actor"], e["role"]) for e in _audit(api_engine, "parcel_alerts", alert)] == [
        ("demo-officer", "officer"),
        ("demo-admin", "admin"),
    ]


def test_media_correct_sentiment_officers_may_not(role_client, api_engine, tokens):
    article = _id(api_engine, "SELECT max(id) FROM articles")
    body = {"article_id": article, "label": "negative", "reviewer": "Phạm D", "note": "tai nạn"}
    assert_ogc_error(
        role_client.post("/digest/feedback", json=body, headers=tokens["officer"]), 403, "media"
    )
    assert_ogc_error(
        role_client.post("/digest/feedback", json={}, headers=tokens["officer"]), 403, "media"
    )
    assert_ogc_error(
        role_client.patch(
            f"/collections/articles/items/{article}",
            json={"sentiment": "negative"},
            headers=tokens["officer"],
        ),
        403,
        "media",
    )
    assert _audit(api_engine, "articles", article) == []
    r = role_client.post("/digest/feedback", json=body, headers=tokens["media"])
    assert r.status_code == 201, r.text
    [entry] = _audit(api_engine, "articles", article)
    assert (entry["actor"], entry["role"], entry["action"]) == (
        "demo-media",
        "media",
        "correct_label",
    )
    assert (
        entry["new_value"]["sentiment"] == "negative" and entry["new_value"]["reviewer"] == "Phạm D"
    )
    assert set(entry["old_value"]) == {"sentiment"}  # the label the reviewer saw (model's)


def test_processes_need_their_role(role_client, api_engine, tokens):
    digest = {"inputs": {"date": "2025-07-02"}}
    land = {"inputs": {"before": "data/nope.tif", "after": "data/nope.tif", "threshold": 2}}
    # without any token configured by the operator, the demo tokens run processes
    assert (
        role_client.post(
            "/processes/daily-digest/execution", json=digest, headers=tokens["media"]
        ).status_code
        == 200
    )
    assert (
        role_client.post(
            "/processes/daily-digest/execution", json=digest, headers=tokens["admin"]
        ).status_code
        == 200
    )
    assert_ogc_error(
        role_client.post(
            "/processes/daily-digest/execution", json=digest, headers=tokens["officer"]
        ),
        403,
        "media",
    )
    assert_ogc_error(
        role_client.post(
            "/processes/sentiment-scoring/execution",
            json={"inputs": {"article_ids": [1]}},
            headers=tokens["officer"],
        ),
        403,
        "media",
    )
    # the role is checked before the inputs: a media token learns nothing about land inputs
    assert_ogc_error(
        role_client.post(
            "/processes/land-change-detection/execution", json=land, headers=tokens["media"]
        ),
        403,
        "officer",
    )
    assert_ogc_error(
        role_client.post(
            "/processes/land-change-detection/execution", json=land, headers=tokens["officer"]
        ),
        400,
        "threshold",
    )
    assert_ogc_error(role_client.post("/processes/daily-digest/execution", json=digest), 401)
    # dismissing a job needs the role of its process
    r = role_client.post(
        "/processes/daily-digest/execution",
        json=digest,
        headers={**tokens["media"], "Prefer": "respond-async"},
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"].replace("http://testserver", "")
    assert_ogc_error(role_client.delete(location, headers=tokens["officer"]), 403, "media")
    assert role_client.delete(location, headers=tokens["media"]).status_code == 200


def test_demo_tokens_are_generated_once_per_state_dir(tmp_path, demo_state, tokens):
    from ioc.demo import demo_tokens

    path, entries = demo_tokens(demo_state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(role for _, role, _ in entries) == ["admin", "media", "officer"]
    assert {role: {"Authorization": f"Bearer {t}"} for _, role, t in entries} == tokens  # reused
    _, other = demo_tokens(tmp_path)
    assert {t for *_, t in other}.isdisjoint({t for *_, t in entries})  # per state dir, random
    store = TokenStore.from_settings([], path)
    assert {p.name: p.role_label for p in store.tokens.values()} == {
        "demo-officer": "officer",
        "demo-media": "media",
        "demo-admin": "admin",
    }


def test_token_entries(tmp_path, caplog):
    f = tmp_path / "tokens"
    f.write_text(
        "# operators\ntran-b:officer:aaaaaaaaaaaaaaaaaaaa\npham-d:media+officer:cccccccccccccccccccc\n"
    )
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        store = TokenStore.from_settings(["ops:bbbbbbbbbbbbbbbbbbbb"], f)
    assert "'ops' has no role" in caplog.text and "admin" in caplog.text  # old form: admin, warned
    officer = store.authenticate({"authorization": "Bearer aaaaaaaaaaaaaaaaaaaa"})
    assert officer == Principal("tran-b", frozenset({"officer"}))
    assert store.identify({"x-api-key": "bbbbbbbbbbbbbbbbbbbb"}) == "ops"
    both = store.authenticate({"authorization": "Bearer cccccccccccccccccccc"})
    assert both.may("officer") and both.may("media") and not both.may("admin")
    with pytest.raises(ForbiddenError, match="'media' role"):
        officer.require("media", "Correcting sentiment labels")
    assert store.require({"x-api-key": "bbbbbbbbbbbbbbbbbbbb"}, "media", "x").name == "ops"
    with pytest.raises(AuthenticationError):
        store.authenticate({"authorization": "Bearer dddddddddddddddddddd"})
    with pytest.raises(ConfigError, match="'mayor'"):
        parse_entry("x:mayor:eeeeeeeeeeeeeeeeeeee", 1)
    with pytest.raises(ConfigError, match="empty name"):
        parse_entry(":officer:eeeeeeeeeeeeeeeeeeee", 1)
    with pytest.raises(ConfigError, match="shorter than 16"):
        parse_entry("x:officer:short", 1)
    with pytest.raises(ConfigError, match="same token"):
        TokenStore.from_settings(
            ["a:officer:ffffffffffffffffffff", "b:media:ffffffffffffffffffff"], None
        )


def test_ioc_demo_prints_a_token_per_role_and_serves_with_them(tmp_path, monkeypatch, capsys):
    from ioc.demo import _use_demo_tokens

    for name in ("IOC_API_TOKENS", "IOC_API_TOKENS_FILE"):
        # set then unset: monkeypatch restores the original state, undoing what the demo sets
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    _use_demo_tokens(tmp_path, "127.0.0.1", 5000)
    out = capsys.readouterr().out
    path = tmp_path / "api" / "demo-tokens"
    assert os.environ["IOC_API_TOKENS_FILE"] == str(path)
    store = TokenStore.from_settings([], path)
    for token, principal in store.tokens.items():
        assert token in out and principal.role_label in out
    # operator tokens configured: no demo tokens
    monkeypatch.setenv("IOC_API_TOKENS", "ops:admin:gggggggggggggggggggg")
    _use_demo_tokens(tmp_path / "other", "127.0.0.1", 5000)
    assert "operator's" in capsys.readouterr().out
    assert not (tmp_path / "other" / "api" / "demo-tokens").exists()
