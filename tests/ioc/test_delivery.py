"""Digest and alert delivery against a real SMTP server on 127.0.0.1 (aiosmtpd with STARTTLS
and AUTH, certificate made here) and a real local HTTP server for the webhook."""

from __future__ import annotations

import datetime as dt
import email
import http.server
import ipaddress
import json
import logging
import shutil
import socket
import threading
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ioc.delivery import (
    DeliveryConfigError,
    DeliverySettings,
    Recipients,
    SmtpAuthenticationError,
    SmtpTlsError,
    SmtpUnavailableError,
    WebhookError,
    deliver_alert_summary,
    deliver_digest,
    digest_subject,
    new_alerts,
)
from nlp.digest import build_digest, render_html
from tests._digest_day import DAY
from tests._digest_day import seed_digest_day as _seed

USER, PASSWORD = "ioc-mailer", "s3cret-Pa55word"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# -- a real SMTP server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (cert.pem, key.pem)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Handler:
    """Records what arrives; can defer (4xx) the first DATA commands or refuse recipients."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.defer_data = 0
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.defer_data > 0:
            self.defer_data -= 1
            return "451 4.3.0 temporary failure, try again later"
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content or envelope.content,
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if session.authenticated else None,
            }
        )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1: STARTTLS required (default), implicit TLS (``implicit``), or
    no TLS at all (``tls=False``)."""

    def __init__(
        self, certificate, accept_login: bool = True, implicit: bool = False, tls: bool = True
    ) -> None:
        import ssl

        self.handler = Handler()
        self.logins: list[tuple[str, str]] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(certificate[0]), str(certificate[1]))

        def authenticate(server, session, envelope, mechanism, auth_data):
            assert isinstance(auth_data, LoginPassword)
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((session.peer, login))
            ok = accept_login and login == USER and password == PASSWORD
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        self.port = _free_port()
        if implicit:
            kwargs = {"ssl_context": ctx, "auth_require_tls": False}
        elif tls:
            kwargs = {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
        else:
            kwargs = {"auth_require_tls": False}
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, authenticator=authenticate, **kwargs
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(certificate):
    with SmtpServer(certificate) as server:
        yield server


def settings_for(
    server: SmtpServer | None, certificate, recipients: Path | None, **overrides
) -> DeliverySettings:
    values = dict(
        smtp_host="127.0.0.1",
        smtp_port=server.port if server else _free_port(),
        smtp_user=USER,
        smtp_password=PASSWORD,
        smtp_from="Trung tâm IOC Ninh Bình <ioc@ninhbinh.example.vn>",
        smtp_ca_file=certificate[0],
        smtp_timeout=5,
        delivery_recipients_file=recipients,
        delivery_attempts=4,
        delivery_backoff_seconds=0.01,
        delivery_backoff_max_seconds=0.05,
        delivery_base_url="https://ioc.example.vn",
    )
    values.update(overrides)
    return DeliverySettings(_env_file=None, **values)


@pytest.fixture(scope="module")
def digest(engine) -> tuple[dict, str, list[dict]]:
    """A real digest (news, communes and an alert on DAY), built from PostGIS and rolled back."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            _seed(conn)
            d = build_digest(conn, DAY)
            alerts = new_alerts(conn, dt.datetime.combine(DAY, dt.time(0), tzinfo=dt.UTC))
        finally:
            trans.rollback()
    return json.loads(json.dumps(d, default=str)), render_html(d), alerts


@pytest.fixture
def recipients(tmp_path) -> Path:
    path = tmp_path / "recipients.yaml"
    path.write_text(
        "default: ['Lãnh đạo Sở <lanhdao@example.vn>']\n"
        "alerts: [diachinh@example.vn]\n"
        "topics:\n"
        "  security_order: [anninh@example.vn]\n"
        "  health: [yte@example.vn]\n"  # no health news that day: no digest
        "communes:\n"
        "  '99002': [xathub@example.vn, LANHDAO@example.vn]\n"  # duplicate of default
        "  '12345': [xakhac@example.vn]\n",
        encoding="utf-8",
    )
    return path


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=default_policy)


# -- the digest -------------------------------------------------------------------------------------
pytestmark = pytest.mark.postgis


# A database of this module's own (own_database_url, tests/conftest.py):
# new_alerts() returns every alert created since a date, so alerts other modules committed
# would be summarised with this module's one.
@pytest.fixture(scope="module")
def database_url(own_database_url):
    return own_database_url


@pytest.fixture(scope="module")
def engine(own_engine):
    return own_engine


def test_digest_arrives_as_valid_mime_in_vietnamese(smtp, certificate, recipients, digest):
    data, html, _ = digest
    settings = settings_for(smtp, certificate, recipients)
    report = deliver_digest(data, html, PDF, settings)

    assert report.ok and report.smtp_attempts == 1
    assert sorted(report.sent) == ["anninh@example.vn", "lanhdao@example.vn", "xathub@example.vn"]
    got = {m["rcpt_tos"][0]: m for m in smtp.handler.messages}
    assert set(got) == set(report.sent)  # one message each, nobody else (health, 12345)
    assert all(m["tls"] and m["login"] == USER for m in got.values())
    assert smtp.logins and smtp.logins[0][1] == USER

    msg = parse(got["anninh@example.vn"]["content"])
    assert msg["Subject"] == digest_subject(data)
    assert msg["Subject"].startswith(
        "Bản tin dư luận trực tuyến ngày 10/03/2026: 3 bài, 2 tiêu cực"
    )
    assert msg["From"].addresses[0].display_name == "Trung tâm IOC Ninh Bình"
    assert msg["To"] == "anninh@example.vn" and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    assert "Cháy lớn thiêu rụi xưởng ở phường Thử A" in text
    assert "https://ioc.example.vn/digest/2026-03-10?f=html" in text
    assert "chủ đề «An ninh trật tự»" in text  # why this address got it
    body = msg.get_body(("html",)).get_content()
    assert "Bản tin dư luận trực tuyến" in body and "Người dân bức xúc vì ô nhiễm ở xã Cũ" in body
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "ban-tin-2026-03-10.pdf"
    assert attachment.get_content() == PDF

    # delivered again (a re-run of the job): the same Message-ID, so clients see one message
    again = deliver_digest(data, html, None, settings)
    assert again.ok
    second = parse(smtp.handler.messages[-1]["content"])
    first = parse(
        next(
            m["content"]
            for m in smtp.handler.messages
            if m["rcpt_tos"] == smtp.handler.messages[-1]["rcpt_tos"]
        )
    )
    assert second["Message-ID"] == first["Message-ID"]
    assert [p.get_content_type() for p in second.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


def test_refused_login_is_one_clear_error_and_the_password_is_never_logged(
    certificate, recipients, digest, caplog
):
    data, html, _ = digest
    caplog.set_level(logging.DEBUG)
    with SmtpServer(certificate, accept_login=False) as server:
        settings = settings_for(server, certificate, recipients)
        with pytest.raises(SmtpAuthenticationError) as info:
            deliver_digest(data, html, PDF, settings)
        assert server.handler.messages == []
        assert len({peer for peer, _ in server.logins}) == 1  # one connection: not retried
    message = str(info.value)
    assert f"127.0.0.1:{server.port}" in message and f"'{USER}'" in message and "535" in message
    assert info.value.report.errors and info.value.report.sent == []
    assert PASSWORD not in message and PASSWORD not in caplog.text
    assert PASSWORD not in repr(settings) and PASSWORD not in json.dumps(
        info.value.report.to_dict()
    )


def test_transient_failures_are_retried_with_back_off(smtp, certificate, recipients, digest):
    data, html, _ = digest
    smtp.handler.defer_data = 2  # 451 twice
    sleeps: list[float] = []
    report = deliver_digest(
        data, html, PDF, settings_for(smtp, certificate, recipients), sleep=sleeps.append
    )
    assert report.ok and len(report.sent) == 3
    assert report.smtp_attempts == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0]
    assert len(smtp.handler.messages) == 3  # nobody twice


def test_unreachable_server_gives_up_after_the_attempts(certificate, recipients, digest):
    data, html, _ = digest
    settings = settings_for(None, certificate, recipients, delivery_attempts=3)
    sleeps: list[float] = []
    with pytest.raises(SmtpUnavailableError) as info:
        deliver_digest(data, html, PDF, settings, sleep=sleeps.append)
    assert f"127.0.0.1:{settings.smtp_port}" in str(info.value) and "connection refused" in str(
        info.value
    )
    assert "after 3 attempt(s)" in str(info.value) and len(sleeps) == 2
    assert info.value.report.not_sent == 3


def test_untrusted_certificate_is_refused(smtp, certificate, recipients, digest):
    data, html, _ = digest
    with pytest.raises(SmtpTlsError, match="not trusted.*IOC_SMTP_CA_FILE"):
        deliver_digest(
            data, html, PDF, settings_for(smtp, certificate, recipients, smtp_ca_file=None)
        )
    assert smtp.handler.messages == [] and smtp.logins == []  # no password sent


def test_implicit_tls_on_port_465_style(certificate, recipients, digest):
    data, html, _ = digest
    with SmtpServer(certificate, implicit=True) as server:
        report = deliver_digest(
            data,
            html,
            PDF,
            settings_for(server, certificate, recipients, smtp_ssl=True, smtp_starttls=False),
        )
        assert report.ok and len(server.handler.messages) == 3
        assert all(m["login"] == USER for m in server.handler.messages)


def test_a_server_without_starttls_never_sees_the_password(certificate, recipients, digest):
    data, html, _ = digest
    with SmtpServer(certificate, tls=False) as server:
        with pytest.raises(SmtpTlsError, match="does not offer STARTTLS"):
            deliver_digest(data, html, PDF, settings_for(server, certificate, recipients))
        assert server.logins == [] and server.handler.messages == []
    with pytest.raises(DeliveryConfigError, match="unencrypted"):
        deliver_digest(
            data, html, PDF, settings_for(server, certificate, recipients, smtp_starttls=False)
        )


def test_a_refused_recipient_does_not_stop_the_others(smtp, certificate, recipients, digest):
    data, html, _ = digest
    smtp.handler.refuse = {"anninh@example.vn"}
    report = deliver_digest(data, html, PDF, settings_for(smtp, certificate, recipients))
    assert not report.ok and list(report.failed) == ["anninh@example.vn"]
    assert report.failed["anninh@example.vn"].startswith("550")
    assert sorted(m["rcpt_tos"][0] for m in smtp.handler.messages) == [
        "lanhdao@example.vn",
        "xathub@example.vn",
    ]


# -- alerts ---------------------------------------------------------------------------------------
def test_alert_summary_goes_to_the_alert_lists_and_the_communes_concerned(
    smtp, certificate, tmp_path, digest
):
    _, _, alerts = digest
    assert [a["severity"] for a in alerts] == ["high"] and alerts[0][
        "commune_name"
    ] == "Phường Thử A"
    path = tmp_path / "r.yaml"
    path.write_text(
        "alerts: [diachinh@example.vn]\ncommunes:\n  '99001': [phuonga@example.vn]\n"
        "  '99002': [xathub@example.vn]\n",
        encoding="utf-8",
    )
    report = deliver_alert_summary(alerts, settings_for(smtp, certificate, path))
    assert sorted(report.sent) == ["diachinh@example.vn", "phuonga@example.vn"]  # not 99002
    msg = parse(smtp.handler.messages[0]["content"])
    assert msg["Subject"] == "Cảnh báo sử dụng đất mới: 1 thửa đất trên 1 xã/phường"
    text = msg.get_body(("plain",)).get_content()
    assert (
        "Phường Thử A (99001), thửa 1/1 [LUC]" in text
        and "mức cao" in text
        and "→ xây dựng" in text
    )
    assert f"https://ioc.example.vn/collections/parcel-alerts/items/{alerts[0]['id']}" in text
    assert "<td>Phường Thử A</td>" in msg.get_body(("html",)).get_content()

    low = [dict(alerts[0], severity="low")]
    skipped = deliver_alert_summary(low, settings_for(smtp, certificate, path))
    assert skipped.skipped and skipped.sent == [] and len(smtp.handler.messages) == 2


# -- recipients file --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("topics:\n  land: [a@example.vn]\n", "topics: unknown topic(s) ['land']"),
        ("default: [not-an-address]\n", "default: 'not-an-address' is not an e-mail address"),
        ("communes:\n  'xã A': [a@example.vn]\n", "is not a number"),
        ("colleagues: [a@example.vn]\n", "colleagues"),
        ("default: [a@example.vn\n", "not a valid YAML"),
    ],
)
def test_bad_recipients_file_is_one_clear_error(tmp_path, content, expected):
    path = tmp_path / "recipients.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DeliveryConfigError) as info:
        Recipients.load(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_unquoted_commune_codes_keep_their_five_digits(tmp_path):
    path = tmp_path / "recipients.yaml"
    path.write_text(
        "communes:\n  13324: [a@example.vn]\n  '00001': [b@example.vn]\n", encoding="utf-8"
    )
    assert set(Recipients.load(path).communes) == {"13324", "00001"}


def test_nothing_configured_is_refused(digest):
    data, html, _ = digest
    with pytest.raises(DeliveryConfigError, match="IOC_SMTP_HOST"):
        deliver_digest(data, html, PDF, DeliverySettings(_env_file=None))
    with pytest.raises(DeliveryConfigError, match="IOC_SMTP_FROM"):
        deliver_digest(data, html, PDF, DeliverySettings(_env_file=None, smtp_host="127.0.0.1"))


# -- webhook ----------------------------------------------------------------------------------------
class Hook:
    """A local HTTP server answering ``fail`` times with ``status`` before 200."""

    def __init__(self, fail: int, status: int = 503) -> None:
        self.fail, self.status, self.bodies = fail, status, []
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append((self.path, self.headers.get("Content-Type"), body))
                code = hook.status if hook.fail > 0 else 200
                hook.fail -= 1
                payload = b"ok" if code == 200 else b"busy"
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-abc123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_is_retried_until_it_answers(digest, caplog):
    data, html, _ = digest
    hook = Hook(fail=2)
    caplog.set_level(logging.DEBUG)
    try:
        settings = DeliverySettings(
            _env_file=None,
            delivery_webhook_url=hook.url,
            delivery_attempts=4,
            delivery_backoff_seconds=0.01,
            delivery_backoff_max_seconds=0.05,
        )
        report = deliver_digest(data, html, PDF, settings)
    finally:
        hook.close()
    assert report.webhook == "sent" and report.webhook_attempts == 3 and len(hook.bodies) == 3
    path, ctype, body = hook.bodies[-1]
    payload = json.loads(body)
    assert (
        ctype == "application/json"
        and payload["kind"] == "digest"
        and payload["date"] == "2026-03-10"
    )
    assert "Cháy lớn thiêu rụi xưởng ở phường Thử A" in payload["text"]
    assert "HTTP 503" in caplog.text and "T0KEN-abc123" not in caplog.text


def test_webhook_refusal_is_not_retried_and_email_still_goes(smtp, certificate, recipients, digest):
    data, html, _ = digest
    hook = Hook(fail=5, status=400)
    try:
        settings = settings_for(smtp, certificate, recipients, delivery_webhook_url=hook.url)
        with pytest.raises(WebhookError, match=r"refused the message: HTTP 400") as info:
            deliver_digest(data, html, PDF, settings)
    finally:
        hook.close()
    assert len(hook.bodies) == 1 and "T0KEN" not in str(info.value)
    assert len(info.value.report.sent) == 3 and len(smtp.handler.messages) == 3


def test_email_failure_does_not_stop_the_webhook(certificate, recipients, digest):
    data, html, _ = digest
    hook = Hook(fail=0)
    try:
        with SmtpServer(certificate, accept_login=False) as server:
            settings = settings_for(server, certificate, recipients, delivery_webhook_url=hook.url)
            with pytest.raises(SmtpAuthenticationError) as info:
                deliver_digest(data, html, PDF, settings)
    finally:
        hook.close()
    assert info.value.report.webhook == "sent" and len(hook.bodies) == 1


# -- command line -----------------------------------------------------------------------------
def _cli_env(server: SmtpServer, certificate, recipients: Path, **extra: str) -> dict[str, str]:
    return {
        "IOC_SMTP_HOST": "127.0.0.1",
        "IOC_SMTP_PORT": str(server.port),
        "IOC_SMTP_USER": USER,
        "IOC_SMTP_PASSWORD": PASSWORD,
        "IOC_SMTP_FROM": "IOC <ioc@example.vn>",
        "IOC_SMTP_CA_FILE": str(certificate[0]),
        "IOC_DELIVERY_RECIPIENTS_FILE": str(recipients),
        "IOC_DELIVERY_ATTEMPTS": "1",
        **extra,
    }


def test_ioc_delivery_check(run_ioc, smtp, certificate, recipients):
    done = run_ioc(
        "delivery",
        "check",
        "--send-to",
        "thu@example.vn",
        env=_cli_env(smtp, certificate, recipients),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "recipients: 1 default, 1 alerts, 2 topic list(s), 2 commune list(s)"
    assert lines[1].startswith(f"SMTP server 127.0.0.1:{smtp.port}: STARTTLS (TLSv1.")
    assert (
        lines[1].endswith(f"logged in as '{USER}'")
        and lines[2] == "test message sent to thu@example.vn"
    )
    msg = parse(smtp.handler.messages[0]["content"])
    assert msg["Subject"] == "Thư thử nghiệm của ioc-monitor" and msg["To"] == "thu@example.vn"


def test_ioc_delivery_check_refused_login_is_one_line(run_ioc, certificate, recipients):
    with SmtpServer(certificate, accept_login=False) as server:
        done = run_ioc("delivery", "check", env=_cli_env(server, certificate, recipients))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: SMTP server 127.0.0.1:{server.port} refused the login of user '{USER}': "
        "535 5.7.8 Authentication credentials invalid."
    ]
    assert PASSWORD not in done.stdout + done.stderr


def test_ioc_delivery_digest_dry_run(run_ioc, smtp, certificate, recipients):
    done = run_ioc(
        "delivery",
        "digest",
        "--date",
        "2026-03-11",
        "--dry-run",
        env=_cli_env(smtp, certificate, recipients),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Bản tin dư luận trực tuyến ngày 11/03/2026: 0 bài, 0 tiêu cực (built now)",
        "  Lãnh đạo Sở <lanhdao@example.vn>: default",
    ]
    assert smtp.handler.messages == []


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_printed_digest_is_attached(smtp, certificate, recipients, digest):
    from nlp.digest import render_pdf

    data, html, _ = digest
    pdf = render_pdf(data)  # the stored JSON digest printed by Chromium, as ioc run does
    report = deliver_digest(data, html, pdf, settings_for(smtp, certificate, recipients))
    assert report.ok
    msg = parse(smtp.handler.messages[0]["content"])
    attachment = next(p for p in msg.walk() if p.get_content_type() == "application/pdf")
    content = attachment.get_content()
    assert content == pdf and content.startswith(b"%PDF-") and b"/Type /Page" in content
