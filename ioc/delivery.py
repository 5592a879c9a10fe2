"""Delivery: the daily digest and the summary of new high-severity parcel alerts, by e-mail
(SMTP with STARTTLS or implicit TLS, authentication) and optionally to a chat webhook.

Who gets what comes from a recipients file (``IOC_DELIVERY_RECIPIENTS_FILE``, YAML)::

    default:  [lanh.dao@ioc.example.vn]          # every digest and every alert summary
    alerts:   [dia.chinh@stnmt.example.vn]       # every alert summary (whole province)
    topics:                                       # the digest, on days with news on the topic
      land_construction: [xay.dung@example.vn]
      environment_pollution: ["Phòng Môi trường <moi.truong@example.vn>"]
    communes:                                     # current commune codes (quote them)
      "13324": [ubnd.xa@example.vn]               # the digest on days the commune is in the
                                                  # news or has an alert; alert summaries
                                                  # limited to that commune's alerts

A recipient gets the digest once if it is on ``default``, or subscribes to any topic with an
article that day, or to any commune named in that day's news or alerts; every recipient gets
its own message (no list of other addresses), which says why it was sent. An alert summary
goes to ``default`` and ``alerts`` (all alerts) and to the lists of the alerts' communes (only
their alerts; the parcel's commune before the 2025 merger counts too).

The message: ``multipart/mixed`` of ``multipart/alternative`` (text/plain, text/html: the
digest page itself) and the PDF (``application/pdf``) when there is one; UTF-8 throughout,
subject encoded per RFC 2047, a stable ``Message-ID`` per digest day and recipient (a
re-sent digest is recognisable as the same message) and ``Auto-Submitted: auto-generated``.

Faults: a refused login (:class:`SmtpAuthenticationError`, naming the server and the user), an
untrusted certificate (:class:`SmtpTlsError`) and a refused sender are final; a refused
connection, a timeout, a dropped connection and any 4xx reply are retried with exponential
back-off (``IOC_DELIVERY_ATTEMPTS``, ``IOC_DELIVERY_BACKOFF_SECONDS``), resuming with the
recipients not yet served; a recipient refused with a 5xx reply is recorded and skipped.
E-mail and webhook are tried independently; when a channel fails as a whole the function
raises a :class:`DeliveryError` subclass whose ``report`` records what was done. Passwords
and webhook URLs (which often embed a token) are never logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html as html_lib
import logging
import random
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gis.errors import IocError

log = logging.getLogger(__name__)

TIMEZONE = dt.timezone(dt.timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh, no DST
LABEL_VI = {"negative": "tiêu cực", "neutral": "trung tính", "positive": "tích cực"}
SEVERITY_VI = {"high": "cao", "medium": "trung bình", "low": "thấp"}
COVER_VI = {
    "built_up": "xây dựng",
    "vegetation": "thực vật",
    "water": "mặt nước",
    "bare": "đất trống",
}


# -- errors -----------------------------------------------------------------------------------
class DeliveryError(IocError):
    """A delivery channel failed as a whole; ``report`` records what was done."""

    exit_code = 1

    def __init__(self, message: str, report: DeliveryReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class DeliveryConfigError(DeliveryError, ValueError):
    """A delivery setting or the recipients file is missing or wrong (a user error)."""

    exit_code = 2


class SmtpAuthenticationError(DeliveryError):
    """The SMTP server refused the login (not retried: the password will not change)."""


class SmtpTlsError(DeliveryError):
    """TLS could not be set up: STARTTLS not offered, or the certificate is not trusted."""


class SmtpUnavailableError(DeliveryError):
    """The SMTP server stayed unreachable or kept answering 4xx through every attempt."""


class SmtpRejectedError(DeliveryError):
    """The SMTP server refused the sender or every recipient (5xx)."""


class WebhookError(DeliveryError):
    """The webhook refused the message or stayed unreachable through every attempt."""


# -- settings ---------------------------------------------------------------------------------
class DeliverySettings(BaseSettings):
    """E-mail and webhook delivery (env prefix ``IOC_``: ``IOC_SMTP_HOST``, …)."""

    model_config = SettingsConfigDict(env_prefix="IOC_", env_file=".env", extra="ignore")

    smtp_host: str | None = Field(default=None, description="SMTP server; unset = no e-mail")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=True, description="upgrade with STARTTLS (port 587)")
    smtp_ssl: bool = Field(default=False, description="implicit TLS from the start (port 465)")
    smtp_from: str | None = Field(default=None, description="From: 'Name <address>' or address")
    smtp_ca_file: Path | None = Field(
        default=None,
        description="CA certificate(s) to trust for the SMTP server (internal CA); "
        "unset = the system's trust store",
    )
    smtp_timeout: float = Field(default=30.0, gt=0)
    delivery_recipients_file: Path | None = None
    delivery_attempts: int = Field(default=4, ge=1, le=20)
    delivery_backoff_seconds: float = Field(default=5.0, ge=0)
    delivery_backoff_max_seconds: float = Field(default=300.0, ge=0)
    delivery_base_url: str | None = Field(
        default=None, description="Public URL of the API, for links in messages"
    )
    delivery_alert_severities: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["high"], description="comma-separated: high, medium, low"
    )
    delivery_webhook_url: SecretStr | None = Field(
        default=None, description="JSON POST target for chat tools (Mattermost, Slack, …)"
    )
    delivery_webhook_timeout: float = Field(default=10.0, gt=0)

    @field_validator("delivery_alert_severities", mode="before")
    @classmethod
    def _severities(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [x.strip().lower() for x in v.strip("[]").replace('"', "").split(",") if x.strip()]
        bad = [x for x in v or [] if x not in SEVERITY_VI]
        if bad or not v:
            raise ValueError(f"severities must be among high, medium, low; got {bad or 'none'}")
        return v

    def smtp_server(self) -> str:
        return f"{self.smtp_host}:{self.smtp_port}"

    def webhook_target(self) -> str:
        """scheme://host[:port] of the webhook: what may be logged (the path may hold a token)."""
        if self.delivery_webhook_url is None:
            return "(none)"
        parts = urlsplit(self.delivery_webhook_url.get_secret_value())
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


# -- recipients ---------------------------------------------------------------------------------
def _check_address(value: str) -> str:
    value = str(value).strip()
    name, addr = parseaddr(value)
    local, _, domain = addr.rpartition("@")
    if not addr or not local or "." not in domain or any(c.isspace() for c in addr):
        raise ValueError(f"'{value[:80]}' is not an e-mail address")
    return value


class Recipients(BaseModel):
    """The recipients file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    default: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)
    topics: dict[str, list[str]] = Field(default_factory=dict)
    communes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("default", "alerts", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("default", "alerts")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        return [_check_address(a) for a in v]

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from nlp.sentiment import TOPIC_NAMES_VI

        unknown = [k for k in v if k not in TOPIC_NAMES_VI]
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; topics are {sorted(TOPIC_NAMES_VI)}")
        return {k: [_check_address(a) for a in (addrs or [])] for k, addrs in v.items()}

    @field_validator("communes", mode="before")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for code, addrs in v.items():
            # YAML reads an unquoted 13324 as a number (and 00001 as 1): commune codes are 5 digits
            key = f"{code:05d}" if isinstance(code, int) else str(code).strip()
            if not key.isdigit():
                raise ValueError(f"commune code '{key[:20]}' is not a number (e.g. '13324')")
            out[key] = [_check_address(a) for a in (addrs or [])]
        return out

    @classmethod
    def load(cls, path: Path) -> Recipients:
        """Read and validate a recipients file.

        Raises
        ------
        DeliveryConfigError
            Missing, not YAML, or invalid (the message names the file and the entry).
        """
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise DeliveryConfigError(
                f"{path}: recipients file not found (IOC_DELIVERY_RECIPIENTS_FILE)."
            ) from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DeliveryConfigError(
                f"{path}: not a valid YAML recipients file ({exc})."
            ) from None
        if not isinstance(data, dict):
            raise DeliveryConfigError(
                f"{path}: expected a mapping with default/alerts/topics/communes."
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise DeliveryConfigError(f"{path}: invalid recipients ({where}: {msg}).") from None


def _key(address: str) -> str:
    return parseaddr(address)[1].lower()


def _add(out: dict[str, tuple[str, list[str]]], addresses: Iterable[str], reason: str) -> None:
    for a in addresses:
        entry = out.setdefault(_key(a), (a, []))
        if reason not in entry[1]:
            entry[1].append(reason)


def digest_recipients(recipients: Recipients, digest: Mapping[str, Any]) -> dict[str, list[str]]:
    """Address → reasons (``default``, ``topic:KEY``, ``commune:CODE``) for one digest."""
    topics = {g.get("key") for g in digest.get("by_topic", []) if g.get("total")}
    communes = {s.get("code") for s in digest.get("commune_stats", [])}
    communes |= {a.get("commune_code") for a in digest.get("alerts", [])}
    out: dict[str, tuple[str, list[str]]] = {}
    _add(out, recipients.default, "default")
    for topic, addrs in recipients.topics.items():
        if topic in topics:
            _add(out, addrs, f"topic:{topic}")
    for code, addrs in recipients.communes.items():
        if code in communes:
            _add(out, addrs, f"commune:{code}")
    return {a: reasons for a, reasons in out.values()}


def alert_recipients(
    recipients: Recipients, alerts: list[Mapping[str, Any]]
) -> dict[str, list[Mapping[str, Any]]]:
    """Address → the alerts it gets (all for default/alerts, its communes' for the others)."""
    scoped: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}
    for a in [*recipients.default, *recipients.alerts]:
        scoped[_key(a)] = (a, list(alerts))
    for code, addrs in recipients.communes.items():
        mine = [x for x in alerts if code in (x.get("commune_code"), x.get("old_commune_code"))]
        if not mine:
            continue
        for a in addrs:
            addr, have = scoped.setdefault(_key(a), (a, []))
            ids = {id(x) for x in have}
            have.extend(x for x in mine if id(x) not in ids)
    return {a: items for a, items in scoped.values() if items}


# -- report -----------------------------------------------------------------------------------
@dataclasses.dataclass
class DeliveryReport:
    """What a delivery did; JSON-serialisable with :meth:`to_dict` (stored with the digest)."""

    kind: str
    subject: str = ""
    smtp_server: str | None = None
    sent: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    not_sent: int = 0  # messages left unsent when the SMTP server stayed unavailable
    smtp_attempts: int = 0
    webhook: str | None = None  # None = not configured, "sent", or "failed: reason"
    webhook_attempts: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    finished_at: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        if self.skipped:
            return f"{self.kind}: nothing sent ({self.skipped})"
        parts = [f"{self.kind}: e-mail to {len(self.sent)} recipient(s)"]
        if self.failed:
            parts.append(f"{len(self.failed)} refused")
        if self.webhook:
            parts.append(f"webhook {self.webhook}")
        parts.extend(self.errors)
        return "; ".join(parts)


# -- back-off ---------------------------------------------------------------------------------
def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential back-off with ±20 % jitter: base, 2·base, 4·base … capped at ``cap``."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


# -- messages -----------------------------------------------------------------------------------
def _vn_date(day: str | dt.date) -> str:
    d = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return d.strftime("%d/%m/%Y")


def _message_id(kind: str, key: str, recipient: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "ioc-monitor.local"
    h = hashlib.sha256(f"{kind}|{key}|{_key(recipient)}".encode()).hexdigest()[:16]
    return f"<ioc-{kind}-{key}-{h}@{domain}>"


def _new_message(sender: str, to: str, subject: str, msg_id: str) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(dt.datetime.now(TIMEZONE))
    msg["Message-ID"] = msg_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    return msg


def digest_subject(digest: Mapping[str, Any]) -> str:
    t = digest.get("totals", {})
    return (
        f"Bản tin dư luận trực tuyến ngày {_vn_date(digest['date'])}: "
        f"{t.get('articles', 0)} bài, {t.get('negative', 0)} tiêu cực"
    )


def _reason_vi(reasons: list[str], digest: Mapping[str, Any]) -> str:
    from nlp.sentiment import TOPIC_NAMES_VI

    names = {s.get("code"): s.get("name") for s in digest.get("commune_stats", [])}
    names.update({a.get("commune_code"): a.get("commune") for a in digest.get("alerts", [])})
    out = []
    for r in reasons:
        kind, _, value = r.partition(":")
        if kind == "default":
            out.append("danh sách nhận chung")
        elif kind == "topic":
            out.append(f"chủ đề «{TOPIC_NAMES_VI.get(value, value)}»")
        elif kind == "commune":
            out.append(f"địa bàn {names.get(value) or value} ({value})")
    return "; ".join(out)


def digest_text(
    digest: Mapping[str, Any], base_url: str | None = None, reasons: list[str] | None = None
) -> str:
    """The plain-text alternative of the digest (Vietnamese)."""
    t = digest.get("totals", {})
    lines = [
        f"BẢN TIN DƯ LUẬN TRỰC TUYẾN - ngày {_vn_date(digest['date'])}",
        "",
        f"Tổng số bài: {t.get('articles', 0)} (tiêu cực {t.get('negative', 0)}, "
        f"trung tính {t.get('neutral', 0)}, tích cực {t.get('positive', 0)})",
    ]
    if digest.get("by_topic"):
        lines += ["", "Theo chủ đề:"]
        lines += [
            f"- {g.get('name') or g.get('key')}: {g['total']} bài ({g.get('negative', 0)} tiêu cực)"
            for g in digest["by_topic"]
        ]
    if digest.get("commune_stats"):
        lines += ["", "Địa bàn được nhắc đến:"]
        lines += [
            f"- {s.get('name') or s['code']}: {s['articles']} bài, {s.get('negative', 0)} tiêu cực"
            for s in digest["commune_stats"][:15]
        ]
    if digest.get("negative_articles"):
        lines += ["", "Bài tiêu cực đáng chú ý:"]
        for i, a in enumerate(digest["negative_articles"], 1):
            lines.append(
                f"{i}. {a.get('title')} ({a.get('source')}; {a.get('topic_name') or ''})".replace(
                    "; )", ")"
                )
            )
            lines.append(f"   {a.get('url')}")
    if digest.get("alerts"):
        lines += ["", "Cảnh báo sử dụng đất trên các địa bàn này:"]
        for a in digest["alerts"][:20]:
            lines.append(
                f"- {a.get('commune')}: {a.get('rule')}, mức {SEVERITY_VI.get(a.get('severity'), a.get('severity'))}, "
                f"{float(a.get('changed_area_m2') or 0):,.0f} m²"
            )
    lines.append("")
    if base_url:
        lines.append(f"Bản đầy đủ: {base_url.rstrip('/')}/digest/{digest['date']}?f=html")
    lines.append("Bản in (PDF) được đính kèm khi có.")
    if reasons:
        lines.append(f"Bạn nhận bản tin này vì đăng ký: {_reason_vi(reasons, digest)}.")
    return "\n".join(lines) + "\n"


def digest_message(
    digest: Mapping[str, Any],
    html: str,
    pdf: bytes | None,
    sender: str,
    to: str,
    base_url: str | None = None,
    reasons: list[str] | None = None,
) -> EmailMessage:
    """One recipient's digest e-mail: text + HTML alternatives, the PDF attached."""
    msg = _new_message(
        sender, to, digest_subject(digest), _message_id("digest", str(digest["date"]), to, sender)
    )
    msg.set_content(
        digest_text(digest, base_url, reasons),
        subtype="plain",
        charset="utf-8",
        cte="quoted-printable",
    )
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    if pdf:
        msg.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=f"ban-tin-{digest['date']}.pdf"
        )
    return msg


def _alert_row(a: Mapping[str, Any], base_url: str | None) -> dict[str, str]:
    created = a.get("created_at")
    if isinstance(created, dt.datetime):
        created = created.astimezone(TIMEZONE).strftime("%d/%m/%Y %H:%M")
    parcel = "/".join(str(x) for x in (a.get("sheet_number"), a.get("parcel_number")) if x)
    link = (
        f"{base_url.rstrip('/')}/collections/parcel-alerts/items/{a.get('id')}" if base_url else ""
    )
    return {
        "id": str(a.get("id")),
        "commune": str(a.get("commune_name") or a.get("commune_code") or ""),
        "code": str(a.get("commune_code") or ""),
        "parcel": parcel or str(a.get("parcel_id") or ""),
        "legal": str(a.get("legal_code") or ""),
        "rule": str(a.get("rule") or ""),
        "severity": SEVERITY_VI.get(a.get("severity"), str(a.get("severity"))),
        "change": f"{COVER_VI.get(a.get('observed_from'), a.get('observed_from') or '?')} → "
        f"{COVER_VI.get(a.get('observed_to'), a.get('observed_to') or '?')}",
        "area": f"{float(a.get('changed_area_m2') or 0):,.0f} m² ({100 * float(a.get('changed_fraction') or 0):.0f} %)",
        "created": str(created or ""),
        "link": link,
    }


def alerts_subject(alerts: list[Mapping[str, Any]]) -> str:
    communes = {a.get("commune_code") for a in alerts}
    return f"Cảnh báo sử dụng đất mới: {len(alerts)} thửa đất trên {len(communes)} xã/phường"


def alerts_message(
    alerts: list[Mapping[str, Any]], sender: str, to: str, base_url: str | None = None
) -> EmailMessage:
    """One recipient's alert summary: a table of the new alerts (text + HTML)."""
    rows = [_alert_row(a, base_url) for a in alerts]
    key = hashlib.sha256(",".join(sorted(r["id"] for r in rows)).encode()).hexdigest()[:12]
    msg = _new_message(sender, to, alerts_subject(alerts), _message_id("alerts", key, to, sender))
    text_lines = [
        alerts_subject(alerts),
        "",
        "Các thửa đất có dấu hiệu chuyển đổi mục đích sử dụng trái phép, cần kiểm tra thực địa:",
        "",
    ]
    for r in rows:
        text_lines.append(
            f"- {r['commune']} ({r['code']}), thửa {r['parcel']} [{r['legal']}]: {r['rule']}, "
            f"mức {r['severity']}, {r['change']}, {r['area']}, phát hiện {r['created']}"
        )
        if r["link"]:
            text_lines.append(f"  {r['link']}")
    msg.set_content(
        "\n".join(text_lines) + "\n", subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    e = html_lib.escape
    cells = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(r[k])}</td>"
            for k in ("commune", "parcel", "legal", "rule", "severity", "change", "area", "created")
        )
        + (f'<td><a href="{e(r["link"])}">xem</a></td>' if r["link"] else "<td></td>")
        + "</tr>"
        for r in rows
    )
    body = (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>'
        + e(alerts_subject(alerts))
        + "</title></head>"
        '<body style="font-family:sans-serif"><h2>' + e(alerts_subject(alerts)) + "</h2>"
        "<p>Các thửa đất có dấu hiệu chuyển đổi mục đích sử dụng trái phép, cần kiểm tra thực địa.</p>"
        '<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">'
        "<tr><th>Xã/phường</th><th>Tờ/thửa</th><th>Loại đất</th><th>Quy tắc</th><th>Mức</th>"
        "<th>Biến động</th><th>Diện tích</th><th>Phát hiện</th><th></th></tr>"
        + cells
        + "</table></body></html>"
    )
    msg.add_alternative(body, subtype="html", charset="utf-8", cte="base64")
    return msg


# -- SMTP -------------------------------------------------------------------------------------
class _Transient(Exception):
    """A failure worth retrying (network, timeout, 4xx)."""


def _reply(exc: smtplib.SMTPResponseException) -> str:
    err = exc.smtp_error
    text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
    return f"{exc.smtp_code} {' '.join(text.split())}"[:300]


def _check_smtp_settings(settings: DeliverySettings) -> str:
    if not settings.smtp_from:
        raise DeliveryConfigError("IOC_SMTP_FROM is not set (the sender address of the e-mails).")
    try:
        _check_address(settings.smtp_from)
    except ValueError as exc:
        raise DeliveryConfigError(f"IOC_SMTP_FROM: {exc}.") from None
    if settings.smtp_user and not (settings.smtp_starttls or settings.smtp_ssl):
        raise DeliveryConfigError(
            "IOC_SMTP_USER is set but neither IOC_SMTP_STARTTLS nor IOC_SMTP_SSL: the password "
            "would cross the network unencrypted."
        )
    if settings.smtp_user and settings.smtp_password is None:
        raise DeliveryConfigError("IOC_SMTP_USER is set but IOC_SMTP_PASSWORD is not.")
    if settings.smtp_ca_file and not Path(settings.smtp_ca_file).is_file():
        raise DeliveryConfigError(f"IOC_SMTP_CA_FILE: {settings.smtp_ca_file} is not a file.")
    return settings.smtp_from


def _tls_context(settings: DeliverySettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if settings.smtp_ca_file:
        ctx.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return ctx


def _connect(settings: DeliverySettings) -> smtplib.SMTP:
    """Connected, encrypted and logged in (errors classified: _Transient or DeliveryError)."""
    server, user = settings.smtp_server(), settings.smtp_user
    smtp: smtplib.SMTP | None = None
    try:
        if settings.smtp_ssl:
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=_tls_context(settings),
            )
        else:
            smtp = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        smtp.ehlo()
        if settings.smtp_starttls and not settings.smtp_ssl:
            if not smtp.has_extn("starttls"):
                raise SmtpTlsError(
                    f"SMTP server {server} does not offer STARTTLS; not sending (set "
                    "IOC_SMTP_STARTTLS=false only for a trusted relay without a password)."
                )
            smtp.starttls(context=_tls_context(settings))
            smtp.ehlo()
        if user:
            smtp.login(
                user, settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            )
        return smtp
    except BaseException as exc:
        if smtp is not None:
            try:
                smtp.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        if isinstance(exc, DeliveryError):
            raise
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise SmtpTlsError(
                f"TLS certificate of SMTP server {server} is not trusted ({exc.verify_message}); "
                "set IOC_SMTP_CA_FILE to the CA that signed it."
            ) from None
        if isinstance(exc, ssl.SSLError):
            raise SmtpTlsError(
                f"TLS with SMTP server {server} failed: {exc.reason or exc}."
            ) from None
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            if 400 <= exc.smtp_code < 500:
                raise _Transient(f"login of user '{user}' deferred: {_reply(exc)}") from None
            raise SmtpAuthenticationError(
                f"SMTP server {server} refused the login of user '{user}': {_reply(exc)}."
            ) from None
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            raise SmtpAuthenticationError(
                f"SMTP server {server} offers no authentication the client can use for user "
                f"'{user}' ({exc})."
            ) from None
        if isinstance(exc, smtplib.SMTPResponseException):
            if 400 <= exc.smtp_code < 500:
                raise _Transient(_reply(exc)) from None
            raise SmtpRejectedError(
                f"SMTP server {server} refused the session: {_reply(exc)}."
            ) from None
        if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
            raise _Transient(_oserror(exc)) from None
        raise


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"[:300]


def send_messages(
    messages: list[tuple[str, EmailMessage]],
    settings: DeliverySettings,
    report: DeliveryReport,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send each (recipient, message) over one SMTP session; reconnect with back-off on
    transient failures and resume with the recipients not yet served. Fills ``report``."""
    sender = _check_smtp_settings(settings)
    envelope_from = parseaddr(sender)[1]
    server = settings.smtp_server()
    report.smtp_server = server
    pending = list(messages)
    attempt = 0
    while pending:
        attempt += 1
        report.smtp_attempts = attempt
        try:
            smtp = _connect(settings)
            try:
                while pending:
                    rcpt, msg = pending[0]
                    addr = parseaddr(rcpt)[1]
                    try:
                        smtp.send_message(msg, from_addr=envelope_from, to_addrs=[addr])
                    except smtplib.SMTPRecipientsRefused as exc:
                        code, text = next(iter(exc.recipients.values()))
                        reply = f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
                        if 400 <= code < 500:
                            raise _Transient(f"recipient {addr} deferred: {reply}") from None
                        report.failed[addr] = reply[:300]
                        log.warning(
                            "SMTP server %s refused recipient %s: %s", server, addr, reply[:200]
                        )
                        pending.pop(0)
                        _rset(smtp)
                        continue
                    except smtplib.SMTPSenderRefused as exc:
                        if 400 <= exc.smtp_code < 500:
                            raise _Transient(_reply(exc)) from None
                        raise SmtpRejectedError(
                            f"SMTP server {server} refused the sender {envelope_from}: {_reply(exc)}."
                        ) from None
                    except smtplib.SMTPDataError as exc:
                        if 400 <= exc.smtp_code < 500:
                            raise _Transient(_reply(exc)) from None
                        report.failed[addr] = _reply(exc)
                        log.warning(
                            "SMTP server %s refused the message to %s: %s",
                            server,
                            addr,
                            _reply(exc),
                        )
                        pending.pop(0)
                        _rset(smtp)
                        continue
                    except (smtplib.SMTPServerDisconnected, OSError) as exc:
                        raise _Transient(_oserror(exc)) from None
                    report.sent.append(addr)
                    pending.pop(0)
            finally:
                try:
                    smtp.quit()
                except Exception:  # noqa: BLE001 - the session is over either way
                    smtp.close()
        except _Transient as exc:
            if attempt >= settings.delivery_attempts:
                report.not_sent = len(pending)
                raise SmtpUnavailableError(
                    f"SMTP server {server} unavailable after {attempt} attempt(s): {exc}; "
                    f"{len(pending)} message(s) not sent.",
                    report,
                ) from None
            delay = backoff_delay(
                attempt, settings.delivery_backoff_seconds, settings.delivery_backoff_max_seconds
            )
            log.warning(
                "SMTP server %s: %s; attempt %d of %d, retrying in %.1f s",
                server,
                exc,
                attempt,
                settings.delivery_attempts,
                delay,
            )
            sleep(delay)
        except DeliveryError as exc:
            report.not_sent = len(pending)
            exc.report = report
            raise
    if messages and not report.sent:
        raise SmtpRejectedError(
            f"SMTP server {server} refused every recipient: "
            + "; ".join(f"{k}: {v}" for k, v in report.failed.items())[:500],
            report,
        )


def _rset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected as exc:
        raise _Transient(_oserror(exc)) from None


# -- webhook ----------------------------------------------------------------------------------
class _RedactUrls(logging.Filter):
    """Hides the webhook URLs (their path often is the token) in httpx's request log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self._redact(a) for a in args)
        return True

    def _redact(self, value: Any) -> Any:
        text = str(value)
        for secret, shown in self.secrets.items():
            if secret in text:
                return text.replace(secret, shown)
        return value


_REDACT = _RedactUrls()
logging.getLogger("httpx").addFilter(_REDACT)


def post_webhook(
    payload: dict[str, Any], settings: DeliverySettings, sleep: Callable[[float], None] = time.sleep
) -> int:
    """POST ``payload`` as JSON; retry transport errors, 5xx and 429 with back-off (honouring
    Retry-After). Returns the number of attempts.

    Raises
    ------
    WebhookError
        A 4xx answer (not 429), or no success within ``delivery_attempts``.
    """
    import httpx

    if settings.delivery_webhook_url is None:
        raise DeliveryConfigError("IOC_DELIVERY_WEBHOOK_URL is not set.")
    url = settings.delivery_webhook_url.get_secret_value()
    target = settings.webhook_target()
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryConfigError("IOC_DELIVERY_WEBHOOK_URL must be an http(s) URL.")
    _REDACT.secrets[url] = target + "/***"
    attempt = 0
    with httpx.Client(timeout=settings.delivery_webhook_timeout, follow_redirects=False) as client:
        while True:
            attempt += 1
            retry_after = None
            try:
                response = client.post(url, json=payload, headers={"User-Agent": "ioc-monitor"})
            except httpx.TransportError as exc:
                reason = (
                    "timed out"
                    if isinstance(exc, httpx.TimeoutException)
                    else f"{type(exc).__name__}"
                )
            else:
                if response.status_code < 300:
                    return attempt
                reason = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    raise WebhookError(
                        f"webhook {target} refused the message: {reason} "
                        f"{' '.join(response.text.split())[:200]}"
                    )
                header = response.headers.get("retry-after", "")
                if header.isdigit():
                    retry_after = min(float(header), settings.delivery_backoff_max_seconds)
            if attempt >= settings.delivery_attempts:
                raise WebhookError(f"webhook {target} failed after {attempt} attempt(s): {reason}.")
            delay = (
                retry_after
                if retry_after is not None
                else backoff_delay(
                    attempt,
                    settings.delivery_backoff_seconds,
                    settings.delivery_backoff_max_seconds,
                )
            )
            log.warning(
                "webhook %s: %s; attempt %d of %d, retrying in %.1f s",
                target,
                reason,
                attempt,
                settings.delivery_attempts,
                delay,
            )
            sleep(delay)


def _webhook(
    payload: dict[str, Any],
    settings: DeliverySettings,
    report: DeliveryReport,
    sleep: Callable[[float], None],
) -> DeliveryError | None:
    if settings.delivery_webhook_url is None:
        return None
    try:
        report.webhook_attempts = post_webhook(payload, settings, sleep)
        report.webhook = "sent"
        return None
    except DeliveryError as exc:
        report.webhook = f"failed: {exc}"
        report.errors.append(str(exc))
        log.error("%s", exc)
        return exc


# -- entry points -----------------------------------------------------------------------------
def _recipients(settings: DeliverySettings) -> Recipients:
    if settings.delivery_recipients_file is None:
        raise DeliveryConfigError(
            "IOC_SMTP_HOST is set but IOC_DELIVERY_RECIPIENTS_FILE is not (who gets the e-mails)."
        )
    return Recipients.load(settings.delivery_recipients_file)


def _require_channel(settings: DeliverySettings) -> None:
    if not settings.smtp_host and settings.delivery_webhook_url is None:
        raise DeliveryConfigError(
            "No delivery channel: set IOC_SMTP_HOST (with IOC_SMTP_FROM and "
            "IOC_DELIVERY_RECIPIENTS_FILE) or IOC_DELIVERY_WEBHOOK_URL."
        )


def _finish(report: DeliveryReport, failures: list[DeliveryError]) -> DeliveryReport:
    report.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _count(report)
    if failures:
        first = failures[0]
        first.report = report
        raise first
    log.info("%s", report.summary())
    return report


def _count(report: DeliveryReport) -> None:
    try:
        from api.metrics import observe_delivery
    except ImportError:  # metrics are optional for a library caller
        return
    if report.smtp_server:
        observe_delivery(
            report.kind, "email", sent=len(report.sent), failed=len(report.failed) + report.not_sent
        )
    if report.webhook:
        observe_delivery(
            report.kind,
            "webhook",
            sent=int(report.webhook == "sent"),
            failed=int(report.webhook != "sent"),
        )


def deliver_digest(
    digest: Mapping[str, Any],
    html: str,
    pdf: bytes | None,
    settings: DeliverySettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """E-mail the digest of ``digest['date']`` to its recipients and post it to the webhook.

    ``digest`` is :func:`nlp.digest.build_digest`'s dict, ``html`` its rendered page, ``pdf``
    its print (None: sent without attachment, e.g. when Chromium failed).

    Raises
    ------
    DeliveryConfigError
        Nothing configured, or a bad setting / recipients file (nothing is sent).
    DeliveryError
        A channel failed as a whole (its ``report`` says what was sent anyway).
    """
    settings = settings or DeliverySettings()
    _require_channel(settings)
    report = DeliveryReport(kind="digest", subject=digest_subject(digest))
    failures: list[DeliveryError] = []
    if settings.smtp_host:
        sender = _check_smtp_settings(settings)
        targets = digest_recipients(_recipients(settings), digest)
        if not targets:
            report.skipped = "no recipient subscribes to today's topics or communes"
        messages = [
            (a, digest_message(digest, html, pdf, sender, a, settings.delivery_base_url, reasons))
            for a, reasons in targets.items()
        ]
        try:
            send_messages(messages, settings, report, sleep)
        except DeliveryError as exc:
            report.errors.append(str(exc))
            log.error("%s", exc)
            failures.append(exc)
    t = digest.get("totals", {})
    url = (
        f"{settings.delivery_base_url.rstrip('/')}/digest/{digest['date']}?f=html"
        if settings.delivery_base_url
        else None
    )
    negatives = [
        f"• {a.get('title')} ({a.get('source')})" for a in digest.get("negative_articles", [])[:5]
    ]
    text = "\n".join(
        [
            f"*{digest_subject(digest)}*",
            f"Tiêu cực {t.get('negative', 0)} · trung tính {t.get('neutral', 0)} · tích cực {t.get('positive', 0)}",
            *negatives,
            *([url] if url else []),
        ]
    )
    payload = {"text": text, "kind": "digest", "date": digest["date"], "totals": t, "url": url}
    err = _webhook(payload, settings, report, sleep)
    if err is not None:
        failures.append(err)
    return _finish(report, failures)


def deliver_alert_summary(
    alerts: Iterable[Mapping[str, Any]],
    settings: DeliverySettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """E-mail the summary of new parcel alerts (those of ``delivery_alert_severities``, default
    high) and post it to the webhook. ``alerts`` as :func:`gis.alerts.list_alerts` returns them
    (optionally with ``commune_name``; :func:`new_alerts` adds it). Nothing is sent when none
    qualifies. Raises like :func:`deliver_digest`."""
    settings = settings or DeliverySettings()
    _require_channel(settings)
    chosen = [a for a in alerts if a.get("severity") in settings.delivery_alert_severities]
    report = DeliveryReport(kind="alerts")
    if not chosen:
        report.skipped = "no new alert of severity " + "/".join(settings.delivery_alert_severities)
        return _finish(report, [])
    report.subject = alerts_subject(chosen)
    failures: list[DeliveryError] = []
    if settings.smtp_host:
        sender = _check_smtp_settings(settings)
        targets = alert_recipients(_recipients(settings), chosen)
        messages = [
            (a, alerts_message(items, sender, a, settings.delivery_base_url))
            for a, items in targets.items()
        ]
        if not messages:
            report.skipped = "no recipient for these communes"
        try:
            send_messages(messages, settings, report, sleep)
        except DeliveryError as exc:
            report.errors.append(str(exc))
            log.error("%s", exc)
            failures.append(exc)
    rows = [_alert_row(a, settings.delivery_base_url) for a in chosen]
    text = "\n".join(
        [
            f"*{alerts_subject(chosen)}*",
            *[
                f"• {r['commune']}: thửa {r['parcel']} [{r['legal']}] {r['change']}, {r['area']}"
                for r in rows[:20]
            ],
        ]
    )
    payload = {
        "text": text,
        "kind": "alerts",
        "count": len(chosen),
        "alerts": [
            {
                k: r[k]
                for k in (
                    "id",
                    "code",
                    "commune",
                    "parcel",
                    "legal",
                    "rule",
                    "severity",
                    "area",
                    "link",
                )
            }
            for r in rows
        ],
    }
    err = _webhook(payload, settings, report, sleep)
    if err is not None:
        failures.append(err)
    return _finish(report, failures)


_COMMUNE_NAMES_SQL = """
SELECT DISTINCT ON (code) code, name FROM admin_units
WHERE level = 'commune' AND code = ANY(:codes) ORDER BY code, valid_to IS NULL DESC, valid_from DESC
"""


def new_alerts(
    connection: Any, since: dt.datetime, severities: Iterable[str] = ("high",)
) -> list[dict[str, Any]]:
    """Alerts created at or after ``since`` of the given severities, still ``new`` (not yet
    reviewed), with their commune's name: what :func:`deliver_alert_summary` takes."""
    from sqlalchemy import text

    from gis.alerts import list_alerts

    out = [
        a
        for sev in severities
        for a in list_alerts(connection, severity=sev, since=since, status="new")
    ]
    codes = sorted({a["commune_code"] for a in out if a.get("commune_code")})
    names = {}
    if codes:
        names = dict(connection.execute(text(_COMMUNE_NAMES_SQL), {"codes": codes}).all())
    for a in out:
        a["commune_name"] = names.get(a.get("commune_code"))
    return sorted(
        out, key=lambda a: (a.get("commune_code") or "", -float(a.get("changed_area_m2") or 0))
    )


def deliver_daily_digest(
    engine: Any, day: dt.date, settings: DeliverySettings | None = None, pdf: bool = True
) -> DeliveryReport:
    """Build, render and deliver the digest of ``day`` (for a caller that stores nothing)."""
    from nlp.digest import build_digest, render_html, render_pdf
    from nlp.errors import NLPError

    settings = settings or DeliverySettings()
    with engine.connect() as conn:
        digest = build_digest(conn, day)
    base = settings.delivery_base_url
    html = render_html(digest, feedback_url=f"{base.rstrip('/')}/digest/feedback" if base else None)
    data = None
    if pdf:
        try:
            data = render_pdf(digest)
        except NLPError as exc:
            log.warning("digest %s sent without PDF: %s", day, exc)
    return deliver_digest(digest, html, data, settings)


__all__ = [
    "DeliveryConfigError",
    "DeliveryError",
    "DeliveryReport",
    "DeliverySettings",
    "Recipients",
    "SmtpAuthenticationError",
    "SmtpRejectedError",
    "SmtpTlsError",
    "SmtpUnavailableError",
    "WebhookError",
    "alert_recipients",
    "deliver_alert_summary",
    "deliver_daily_digest",
    "deliver_digest",
    "digest_recipients",
    "new_alerts",
    "post_webhook",
    "send_messages",
]


# -- command line -----------------------------------------------------------------------------
def check_smtp(settings: DeliverySettings) -> str:
    """Connect, set up TLS and log in (no message sent); one line describing the session.
    Raises the same errors as a delivery (one attempt)."""
    _check_smtp_settings(settings)
    try:
        smtp = _connect(settings)
    except _Transient as exc:
        raise SmtpUnavailableError(
            f"SMTP server {settings.smtp_server()} unavailable: {exc}."
        ) from None
    try:
        sock = smtp.sock
        tls = sock.version() if isinstance(sock, ssl.SSLSocket) else None
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001
            smtp.close()
    how = ("implicit TLS" if settings.smtp_ssl else "STARTTLS") + f" ({tls})" if tls else "no TLS"
    who = f"logged in as '{settings.smtp_user}'" if settings.smtp_user else "no login"
    return f"SMTP server {settings.smtp_server()}: {how}, {who}"


def _delivery_cli():
    import click

    @click.group("delivery")
    def delivery() -> None:
        """E-mail and webhook delivery of the digest and alert summaries (IOC_SMTP_*,
        IOC_DELIVERY_*; docs/monitoring.md)."""

    @delivery.command("check")
    @click.option(
        "--send-to", "send_to", default=None, help="Also send a short test e-mail to this address."
    )
    @click.option("--webhook", is_flag=True, help="Also post a test message to the webhook.")
    def check(send_to: str | None, webhook: bool) -> None:
        """Check the settings, the recipients file and the SMTP login (nothing is sent unless asked)."""
        settings = DeliverySettings()
        _require_channel(settings)
        if settings.smtp_host:
            r = _recipients(settings)
            click.echo(
                f"recipients: {len(r.default)} default, {len(r.alerts)} alerts, "
                f"{len(r.topics)} topic list(s), {len(r.communes)} commune list(s)"
            )
            click.echo(check_smtp(settings))
            if send_to:
                _check_address(send_to)
                sender = _check_smtp_settings(settings)
                msg = _new_message(
                    sender,
                    send_to,
                    "Thư thử nghiệm của ioc-monitor",
                    _message_id(
                        "test", dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"), send_to, sender
                    ),
                )
                msg.set_content(
                    "Thư này xác nhận cấu hình gửi thư của ioc-monitor hoạt động.\n",
                    charset="utf-8",
                    cte="quoted-printable",
                )
                report = DeliveryReport(kind="test")
                send_messages([(send_to, msg)], settings, report)
                click.echo(f"test message sent to {send_to}")
        if webhook:
            if settings.delivery_webhook_url is None:
                raise DeliveryConfigError("--webhook: IOC_DELIVERY_WEBHOOK_URL is not set.")
            n = post_webhook({"text": "Thư thử nghiệm của ioc-monitor", "kind": "test"}, settings)
            click.echo(f"webhook {settings.webhook_target()}: posted ({n} attempt(s))")

    @delivery.command("digest")
    @click.option(
        "--date", "day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD"
    )
    @click.option("--dry-run", is_flag=True, help="Only list who would get it, and why.")
    @click.pass_obj
    def digest_cmd(app: Any, day: dt.datetime, dry_run: bool) -> None:
        """Send the digest of a day again (the stored one when ``ioc run`` stored it, else
        built now)."""
        import json as _json

        from sqlalchemy import text

        settings = DeliverySettings()
        _require_channel(settings)
        engine = app.engine()
        d = day.date()
        with engine.connect() as conn:
            has_table = (
                conn.execute(text("SELECT to_regclass('public.stored_digests')")).scalar()
                is not None
            )
            row = (
                conn.execute(
                    text("SELECT data, html, pdf FROM stored_digests WHERE day = :d"), {"d": d}
                ).first()
                if has_table
                else None
            )
        if row is not None:
            data, html, pdf = (
                dict(row.data),
                row.html,
                (bytes(row.pdf) if row.pdf is not None else None),
            )
        else:
            from nlp.digest import build_digest, render_html

            with engine.connect() as conn:
                data = _json.loads(_json.dumps(build_digest(conn, d), default=str))
            base = settings.delivery_base_url
            html = render_html(
                data, feedback_url=f"{base.rstrip('/')}/digest/feedback" if base else None
            )
            pdf = None
            if not dry_run:
                from nlp.digest import render_pdf
                from nlp.errors import NLPError

                try:
                    pdf = render_pdf(data)
                except NLPError as exc:
                    click.echo(f"warning: sent without PDF: {exc}", err=True)
        if dry_run:
            targets = digest_recipients(_recipients(settings), data) if settings.smtp_host else {}
            click.echo(f"{digest_subject(data)} ({'stored' if row is not None else 'built now'})")
            for addr, reasons in targets.items():
                click.echo(f"  {addr}: {', '.join(reasons)}")
            if not targets:
                click.echo("  nobody subscribes to this day's topics or communes")
            return
        report = deliver_digest(data, html, pdf, settings)
        if row is not None:
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE stored_digests SET delivery = CAST(:j AS jsonb) WHERE day = :d"),
                    {"j": _json.dumps(report.to_dict(), default=str), "d": d},
                )
        click.echo(report.summary())

    return delivery


delivery = _delivery_cli()
