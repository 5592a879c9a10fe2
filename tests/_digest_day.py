"""Data of one digest day shared by the digest tests (tests/nlp) and the delivery tests
(tests/ioc): two communes, their articles and scores, a high parcel alert."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text

DAY = dt.date(2026, 3, 10)
SQUARE = "MULTIPOLYGON((({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0})))"


def seed_digest_day(conn) -> dict[str, int]:
    """Three articles of DAY in two new communes (one through the 2025 crosswalk), one older
    article, one high parcel alert in 99001; returns the ids the tests refer to."""
    ids: dict[str, int] = {}
    for code, name, x0 in (("99001", "Phường Thử A", 105.90), ("99002", "Xã Thử B", 105.95)):
        conn.execute(
            text(
                "INSERT INTO admin_units (code, level, unit_type, name, name_ascii, province_code, valid_from, geom) "
                "VALUES (:c, 'commune', 'phường', :n, :n, '99', '2025-07-01', ST_GeomFromText(:g, 4326))"
            ),
            {"c": code, "n": name, "g": SQUARE.format(x0=x0, y0=20.50, x1=x0 + 0.05, y1=20.55)},
        )
    conn.execute(
        text(
            "INSERT INTO admin_units (code, level, unit_type, name, name_ascii, province_code, valid_from, valid_to) "
            "VALUES ('98001', 'commune', 'xã', 'Xã Cũ', 'Xa Cu', '98', '2000-01-01', '2025-06-30')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO admin_unit_crosswalk (old_code, new_code, relation, effective) VALUES ('98001', '99002', 'full', '2025-07-01')"
        )
    )
    unit = {
        r[0]: r[1]
        for r in conn.execute(
            text("SELECT code, id FROM admin_units WHERE code IN ('99001','99002','98001')")
        )
    }
    src = conn.execute(
        text("INSERT INTO news_sources (name, title) VALUES ('baothu', 'Báo Thử') RETURNING id")
    ).scalar_one()
    arts = [
        (
            "neg1",
            "Cháy lớn thiêu rụi xưởng ở phường Thử A",
            "negative",
            {"negative": 0.91, "neutral": 0.06, "positive": 0.03},
            "security_order",
            "99001",
            DAY,
        ),
        (
            "neg2",
            "Người dân bức xúc vì ô nhiễm ở xã Cũ",
            "negative",
            {"negative": 0.72, "neutral": 0.2, "positive": 0.08},
            "environment_pollution",
            "98001",
            DAY,
        ),
        (
            "pos1",
            "Khánh thành cầu mới ở xã Thử B",
            "positive",
            {"negative": 0.05, "neutral": 0.15, "positive": 0.8},
            "land_construction",
            "99002",
            DAY,
        ),
        (
            "old1",
            "Họp bàn kế hoạch năm",
            "neutral",
            {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
            "public_services_admin",
            None,
            DAY - dt.timedelta(days=2),
        ),
    ]
    for key, title, label, probs, topic, place, day in arts:
        aid = conn.execute(
            text(
                "INSERT INTO articles (source_id, url, canonical_url, title, lead, text, published_at, content_hash) "
                "VALUES (:s, :u, :u, :t, 'Tóm tắt.', 'Nội dung bài viết.', :p, :h) RETURNING id"
            ),
            {
                "s": src,
                "u": f"https://bao.test/{key}",
                "t": title,
                "p": dt.datetime.combine(
                    day, dt.time(9, 0), tzinfo=dt.timezone(dt.timedelta(hours=7))
                ),
                "h": key,
            },
        ).scalar_one()
        ids[key] = aid
        reasons = [
            {"kind": "sentence", "text": title, "score": probs[label]},
            {"kind": "phrase", "text": "cháy lớn"},
        ]
        conn.execute(
            text(
                "INSERT INTO article_scores (article_id, model_version, label, probabilities, topic, reasons) "
                "VALUES (:a, 'sentiment-test', :l, CAST(:p AS jsonb), :t, CAST(:r AS jsonb))"
            ),
            {
                "a": aid,
                "l": label,
                "p": json.dumps(probs),
                "t": topic,
                "r": json.dumps(reasons, ensure_ascii=False),
            },
        )
        if place:
            conn.execute(
                text(
                    "INSERT INTO article_places (article_id, admin_unit_id, mention, confidence) VALUES (:a, :u, 'x', 0.9)"
                ),
                {"a": aid, "u": unit[place]},
            )
    srid = conn.execute(text("SELECT Find_SRID('public', 'parcels', 'geom')")).scalar_one()
    run = conn.execute(
        text(
            "INSERT INTO detection_runs (status, method) VALUES ('succeeded', 'test') RETURNING id"
        )
    ).scalar_one()
    parcel = conn.execute(
        text(
            "INSERT INTO parcels (commune_code, sheet_number, parcel_number, area_m2, land_use_code, land_use_code_raw, land_use_code_version, geom) "
            "VALUES ('99001', '1', '1', 500, 'LUC', 'LUC', '2024', ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope(105.91, 20.51, 105.911, 20.511), 4326), :srid))) RETURNING id"
        ),
        {"srid": srid},
    ).scalar_one()
    conn.execute(
        text(
            "INSERT INTO parcel_alerts (run_id, parcel_id, commune_code, changed_area_m2, changed_fraction, legal_code, observed_to, rule, severity, created_at) "
            "VALUES (:r, :p, '99001', 420, 0.84, 'LUC', 'built_up', 'rice_to_built', 'high', :c)"
        ),
        {"r": run, "p": parcel, "c": dt.datetime.combine(DAY, dt.time(10, 0), tzinfo=dt.UTC)},
    )
    return ids
