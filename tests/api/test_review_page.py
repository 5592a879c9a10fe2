"""The officers' review page (``/review/alerts``) in a real headless Chromium driven over the
DevTools protocol, against a real server process: it lists the new alerts the items endpoint
gives (most severe first, newest first, paged), says 401/403 in words, and a confirmation sent
from the page is stored with its audit row. Also the land report routes (html, pdf, 404, the
owner's name only for an officer token) and their OpenAPI declaration.

A database of its own (same PostGIS server), so the reviews made here do not change what the
other API tests see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.api.conftest import _free_port, migrated_database
from tests.api.seed import seed

pytestmark = pytest.mark.postgis
REPO = Path(__file__).resolve().parents[2]
OFFICER = "officer-review-page-0123456789"
MEDIA = "media-review-page-0123456789"
TOKENS = f"tran-b:officer:{OFFICER},pham-d:media:{MEDIA}"
CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)


@pytest.fixture(scope="module")
def page_db(database_url):
    """A migrated, seeded database of this module's own: (url, engine)."""
    from gis.db.session import make_engine

    with migrated_database(database_url, "ioc_review_page_test") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            seed(conn)
        yield url, engine
        engine.dispose()


@pytest.fixture(scope="module")
def page_server(page_db, tmp_path_factory):
    """A real ``serve`` process with an officer and a media token."""
    url, _ = page_db
    port = _free_port()
    log = tmp_path_factory.mktemp("review-server") / "server.log"
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "IOC_DATABASE_URL": url,
        "IOC_API_TOKENS": TOKENS,
        "IOC_API_BASE_URL": base,
    }
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import serve; serve()", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/conformance", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.terminate()
            pytest.fail(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


class Browser:
    """Headless Chromium driven over the DevTools protocol (websockets, no browser download)."""

    def __init__(self) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.TemporaryDirectory(prefix="ioc-review-chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-extensions",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "--window-size=1200,1600",
                f"--user-data-dir={self.profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": self.profile.name},
        )
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("headless Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.n = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 20.0):
        deadline = time.time() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait(
            "document.readyState === 'complete' && document.body.dataset.loaded !== undefined"
        )

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(
            base64.b64decode(
                self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)[
                    "data"
                ]
            )
        )

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.profile.cleanup()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("needs headless Chromium")
    b = Browser()
    yield b
    b.close()


def _new_alerts(engine, severity: str | None) -> list[int]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT id FROM parcel_alerts WHERE review_status = 'new' "
                    "AND (CAST(:s AS text) IS NULL OR severity = :s) ORDER BY created_at DESC, id DESC"
                ),
                {"s": severity},
            )
        ]


def _listed(browser: Browser) -> list[int]:
    return browser.eval(
        "[...document.querySelectorAll('article.alert')].map(a => Number(a.dataset.id))"
    )


def _click_review(browser: Browser, alert_id: int, label: str) -> str:
    """Click the button ``label`` of an alert's card and return the result line once written."""
    browser.eval(f"""(() => {{
        const card = document.getElementById('alert-{alert_id}');
        const b = [...card.querySelectorAll('button')].find(b => b.textContent === {json.dumps(label)});
        card.querySelector('.result').textContent = '';
        b.click(); }})()""")
    return browser.wait(f"document.querySelector('#alert-{alert_id} .result').textContent")


def _set_token(browser: Browser, token: str) -> None:
    browser.eval(f"""(() => {{ document.getElementById('token').value = {json.dumps(token)};
        document.getElementById('token-form').requestSubmit(); }})()""")
    browser.wait(f"sessionStorage.getItem('ioc-token') === {json.dumps(token)}")


@pytest.mark.chromium
@pytest.mark.slow
def test_officer_reviews_alerts_in_the_browser(browser, page_server, page_db, tmp_path):
    _, engine = page_db
    browser.open(f"{page_server}/review/alerts")
    # the most severe level with new alerts first, newest first, 10 a page
    high = _new_alerts(engine, "high")
    assert (
        high
        and browser.eval("document.querySelector('#tabs button.on').dataset.severity") == "high"
    )
    assert _listed(browser) == high[:10]
    counts = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#tabs button[data-severity]')]"
        ".map(b => [b.dataset.severity || 'all', Number(b.dataset.count)]))"
    )
    assert counts == {
        "high": len(high),
        "medium": len(_new_alerts(engine, "medium")),
        "low": len(_new_alerts(engine, "low")),
        "all": len(_new_alerts(engine, None)),
    }
    first = high[0]
    card = browser.eval(f"document.getElementById('alert-{first}').innerText")
    assert f"Cảnh báo {first}" in card and "Công trình xây dựng" in card
    assert "Không có ảnh vệ tinh lưu cho cảnh báo này" in card  # the seeded alerts have no chips
    assert (
        browser.eval(f"document.querySelector('#alert-{first} a.report').getAttribute('href')")
        == f"{page_server}/collections/parcel-alerts/items/{first}/report?f=html"
    )

    # all levels, paged through the items endpoint's links
    browser.eval("document.querySelector('#tabs button[data-severity=\"\"]').click()")
    everything = _new_alerts(engine, None)
    browser.wait(
        f"document.querySelectorAll('article.alert').length === {min(10, len(everything))} && "
        "document.querySelector('#tabs button.on').dataset.severity === ''"
    )
    assert _listed(browser) == everything[:10]
    browser.eval("document.getElementById('next').click()")
    browser.wait(
        f"Number(document.querySelector('article.alert')?.dataset.id) === {everything[10]}"
    )
    assert _listed(browser) == everything[10:20]
    browser.eval("document.querySelector('#tabs button[data-severity=\"high\"]').click()")
    browser.wait(f"Number(document.querySelector('article.alert')?.dataset.id) === {first}")

    # refused answers are said in words, nothing is stored
    assert "Chưa nhập token" in _click_review(browser, first, "Xác nhận vi phạm")
    _set_token(browser, "not-a-valid-token-at-all")
    said = _click_review(browser, first, "Xác nhận vi phạm")
    assert "401" in said and "không hợp lệ" in said
    _set_token(browser, MEDIA)
    said = _click_review(browser, first, "Bác bỏ")
    assert "403" in said and "officer" in said
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT review_status FROM parcel_alerts WHERE id = :i"), {"i": first}
            ).scalar()
            == "new"
        )

    # the officer confirms with a note: stored through gis.review with its audit row
    _set_token(browser, OFFICER)
    note = "Kiểm tra thực địa: đã đổ móng nhà trên đất lúa"
    browser.eval(f"""(() => {{ const c = document.getElementById('alert-{first}');
        c.querySelector('textarea').value = {json.dumps(note)};
        c.querySelector('input').value = 'Trần Thị B'; }})()""")
    said = _click_review(browser, first, "Xác nhận vi phạm")
    assert said.startswith("Đã xác nhận vi phạm — Trần Thị B"), said
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT review_status, reviewer, review_note FROM parcel_alerts WHERE id = :i"),
            {"i": first},
        ).one()
        audit = (
            conn.execute(
                text(
                    "SELECT actor, role, channel, action, old_value, new_value, note FROM audit_log "
                    "WHERE target_table = 'parcel_alerts' AND target_id = :i ORDER BY id"
                ),
                {"i": first},
            )
            .mappings()
            .all()
        )
    assert tuple(row) == ("confirmed", "Trần Thị B", note)
    assert len(audit) == 1
    entry = audit[0]
    assert (entry["actor"], entry["role"], entry["channel"], entry["action"]) == (
        "tran-b",
        "officer",
        "api",
        "review_alert",
    )
    assert (
        entry["old_value"]["review_status"] == "new"
        and entry["new_value"]["review_status"] == "confirmed"
    )
    assert entry["note"] == note
    # with the officer's token the report opens with the owner's name (fetched with the token)
    with engine.connect() as conn:
        owner = conn.execute(
            text(
                "SELECT p.owner_name FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id "
                "WHERE a.id = :i"
            ),
            {"i": first},
        ).scalar()
    browser.eval(
        "window.__opened = []; window.open = (u) => { window.__opened.push(u); }; window.__blobs = []; "
        "const made = URL.createObjectURL; URL.createObjectURL = (b) => { window.__blobs.push(b); return made(b); };"
    )
    browser.eval(f"document.querySelector('#alert-{first} a.report').click()")
    assert browser.wait("window.__opened[0]").startswith("blob:")
    report = browser.eval("window.__blobs[0].text()")
    assert (
        "BÁO CÁO CẢNH BÁO BIẾN ĐỘNG SỬ DỤNG ĐẤT" in report
        and owner in report
        and "Kiểm tra thực địa" in report
    )
    # the counts follow; a reload no longer lists it
    browser.wait(
        f"Number(document.querySelector('#tabs button[data-severity=\"high\"]').dataset.count) === {len(high) - 1}"
    )
    browser.eval("document.getElementById('reload').click()")
    browser.wait(
        f"!document.getElementById('alert-{first}') && document.querySelectorAll('article.alert').length > 0"
    )
    browser.screenshot(tmp_path / "review-page.png")
    assert (tmp_path / "review-page.png").stat().st_size > 10_000


def test_review_page_is_offline_and_reports_are_served(page_db, tmp_path):
    """In-process: the page loads nothing from other hosts; the report routes answer what the
    page links; the PATCH body the page sends records the review and its audit row."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    url, engine = page_db
    settings = ApiSettings(tokens=TOKENS.split(","), base_url="http://testserver", default_items=10)
    with TestClient(
        create_app(settings, url, engine=engine), raise_server_exceptions=False
    ) as client:
        page = client.get("/review/alerts")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Xem xét cảnh báo vi phạm đất đai" in page.text
        external = re.findall(r'(?:src|href)\s*=\s*"(https?://[^"]*)"', page.text)
        assert external == [] and "<script src" not in page.text and "<link" not in page.text
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/review/alerts?x=1").status_code == 400

        # the page's list request
        new = _new_alerts(engine, "medium")
        r = client.get(
            "/collections/parcel-alerts/items?review_status=new&sortby=-created_at%2C-id"
            "&limit=10&offset=0&severity=medium"
        )
        assert r.status_code == 200 and [f["id"] for f in r.json()["features"]] == new[:10]
        alert = new[0]

        # the report it links: Vietnamese HTML; the owner's name for an officer token only
        with engine.connect() as conn:
            owner = conn.execute(
                text(
                    "SELECT p.owner_name FROM parcel_alerts a JOIN parcels p ON "
                    "p.id = a.parcel_id WHERE a.id = :i"
                ),
                {"i": alert},
            ).scalar()
        r = client.get(f"/collections/parcel-alerts/items/{alert}/report")
        assert r.status_code == 200 and "BÁO CÁO CẢNH BÁO BIẾN ĐỘNG SỬ DỤNG ĐẤT" in r.text
        assert owner not in r.text and "không công bố" in r.text
        assert "Không có ảnh vệ tinh lưu cho cảnh báo này" in r.text
        officer = {"Authorization": f"Bearer {OFFICER}"}
        assert (
            owner
            in client.get(f"/collections/parcel-alerts/items/{alert}/report", headers=officer).text
        )
        assert (
            owner
            not in client.get(
                f"/collections/parcel-alerts/items/{alert}/report",
                headers={"Authorization": f"Bearer {MEDIA}"},
            ).text
        )
        assert (
            client.get(
                f"/collections/parcel-alerts/items/{alert}/report",
                headers={"Authorization": "Bearer nope"},
            ).status_code
            == 401
        )
        assert client.get("/collections/parcel-alerts/items/987654/report").status_code == 404
        assert client.get("/collections/parcel-alerts/items/x1/report").status_code == 404
        assert (
            client.get(f"/collections/parcel-alerts/items/{alert}/report?f=docx").status_code == 400
        )
        r = client.get("/reports/communes/13285")
        assert r.status_code == 200 and "Xã Liêm Tuyền (13285)" in r.text
        assert client.get("/reports/communes/00000").status_code == 404
        # the alert links its report
        links = client.get(f"/collections/parcel-alerts/items/{alert}").json()["links"]
        reports = {link["type"]: link["href"] for link in links if link["rel"] == "describedby"}
        assert reports == {
            "text/html": f"http://testserver/collections/parcel-alerts/items/{alert}/report?f=html",
            "application/pdf": f"http://testserver/collections/parcel-alerts/items/{alert}/report?f=pdf",
        }
        paths = client.get("/openapi?f=json").json()["paths"]
        assert {
            "/collections/parcel-alerts/items/{featureId}/report",
            "/reports/communes/{code}",
            "/review/alerts",
        } <= set(paths)

        # the review the page sends
        body = {
            "review_status": "dismissed",
            "review_note": "Ruộng đang cày ải, không xây dựng",
            "reviewer": "Lê Văn C",
        }
        assert (
            client.patch(
                f"/collections/parcel-alerts/items/{alert}",
                json=body,
                headers={"Authorization": f"Bearer {MEDIA}"},
            ).status_code
            == 403
        )
        r = client.patch(
            f"/collections/parcel-alerts/items/{alert}",
            json=body,
            headers={"Content-Type": "application/json", **officer},
        )
        assert r.status_code == 200 and r.json()["properties"]["review_status"] == "dismissed"
        with engine.connect() as conn:
            entry = (
                conn.execute(
                    text(
                        "SELECT actor, role, new_value, note FROM audit_log WHERE target_table = 'parcel_alerts' "
                        "AND target_id = :i ORDER BY id DESC LIMIT 1"
                    ),
                    {"i": alert},
                )
                .mappings()
                .one()
            )
        assert (entry["actor"], entry["role"], entry["note"]) == (
            "tran-b",
            "officer",
            body["review_note"],
        )
        assert entry["new_value"]["reviewer"] == "Lê Văn C"
        # the report now shows the review and its history
        r = client.get(f"/collections/parcel-alerts/items/{alert}/report")
        assert "Đã bác bỏ" in r.text and body["review_note"] in r.text and "tran-b" in r.text


@pytest.mark.chromium
@pytest.mark.skipif(not CHROMIUM, reason="needs headless Chromium")
def test_report_pdf_over_http(page_db):
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    url, engine = page_db
    settings = ApiSettings(tokens=TOKENS.split(","), base_url="http://testserver")
    with TestClient(
        create_app(settings, url, engine=engine), raise_server_exceptions=False
    ) as client:
        r = client.get("/reports/communes/13285?f=pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    boxes = {
        tuple(round(float(v)) for v in m.split())
        for m in re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+?)\s*\]", r.content)
    }
    assert boxes == {(0, 0, 595, 842)}  # A4
