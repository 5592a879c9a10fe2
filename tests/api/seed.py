"""A small, realistic data set for the API tests (VN-2000 / TM-3 482 parcels near Phủ Lý)."""

from __future__ import annotations

from sqlalchemy import Connection, text

N_PARCELS = 1200
N_ALERTS = 25
N_CHANGES = 30
N_ARTICLES = 40
CODES = ("LUC", "LUK", "HNK", "CLN", "ONT", "NTS", "DGT")


def seed(conn: Connection) -> None:
    conn.execute(
        text("""
        INSERT INTO admin_units (code, level, unit_type, name, name_ascii, parent_code, province_code, valid_from, valid_to, geom) VALUES
        ('35', 'province', 'tỉnh', 'Hà Nam', 'Ha Nam', NULL, '35', '2008-08-01', '2025-06-30',
         ST_Multi(ST_MakeEnvelope(105.75, 20.35, 106.15, 20.75, 4326))),
        ('13285', 'commune', 'xã', 'Xã Liêm Tuyền', 'Xa Liem Tuyen', '35', '35', '2008-08-01', NULL,
         ST_Multi(ST_MakeEnvelope(105.84, 20.50, 105.87, 20.54, 4326))),
        ('13288', 'commune', 'xã', 'Xã Liêm Tiết', 'Xa Liem Tiet', '35', '35', '2008-08-01', NULL,
         ST_Multi(ST_MakeEnvelope(105.87, 20.50, 105.90, 20.54, 4326))),
        ('13291', 'commune', 'phường', 'Phường Thanh Châu', 'Phuong Thanh Chau', '35', '35', '2008-08-01', '2025-06-30',
         ST_Multi(ST_MakeEnvelope(105.90, 20.50, 105.93, 20.54, 4326)))
    """)
    )
    codes = "ARRAY[" + ",".join(f"'{c}'" for c in CODES) + "]"
    conn.execute(
        text(f"""
        INSERT INTO parcels (commune_code, sheet_number, parcel_number, area_m2, legal_area_m2,
            land_use_code, land_use_code_raw, land_use_code_version, owner_name, address, imported_at, geom)
        SELECT CASE WHEN g % 2 = 0 THEN '13285' ELSE '13288' END, (g / 100 + 1)::text, (g % 100 + 1)::text,
               ST_Area(p), round(ST_Area(p)), c, c, '2024', 'Nguyễn Văn ' || g, 'Thôn ' || (g % 7 + 1),
               timestamptz '2025-01-01 00:00+07' + (g || ' minutes')::interval, ST_Multi(p)
        FROM (SELECT g, ({codes})[1 + g % {len(CODES)}] AS c,
                     ST_SetSRID(ST_MakeEnvelope(588000 + (g % 40) * 30, 2270000 + (g / 40) * 30,
                                                588000 + (g % 40) * 30 + 25, 2270000 + (g / 40) * 30 + 22), 5897) AS p
              FROM generate_series(1, {N_PARCELS}) g) s
    """)
    )
    run_id = conn.execute(
        text(
            "INSERT INTO detection_runs (status, method, model_version, finished_at) "
            "VALUES ('succeeded', 'cva', 'test-1', now()) RETURNING id"
        )
    ).scalar_one()
    conn.execute(
        text(f"""
        INSERT INTO land_changes (run_id, area_m2, from_class, to_class, confidence, date_before, date_after, commune_code, geom)
        SELECT :run, 500, 'vegetation', CASE WHEN g % 3 = 0 THEN 'bare' ELSE 'built_up' END, 0.5 + g / 100.0,
               date '2024-12-01', date '2025-06-01' + g, '13285',
               ST_Multi(ST_SetSRID(ST_MakeEnvelope(588000 + g * 60, 2270100, 588000 + g * 60 + 20, 2270125), 5897))
        FROM generate_series(1, {N_CHANGES}) g
    """),
        {"run": run_id},
    )
    conn.execute(
        text(f"""
        INSERT INTO parcel_alerts (run_id, parcel_id, commune_code, changed_area_m2, changed_fraction,
            legal_code, observed_from, observed_to, rule, severity)
        SELECT :run, p.id, p.commune_code, 300, 0.6, p.land_use_code, 'vegetation', 'built_up',
               'agricultural_to_built_up', (ARRAY['low','medium','high'])[1 + p.id % 3]
        FROM parcels p WHERE p.land_use_code IN ('LUC', 'LUK', 'HNK', 'CLN') ORDER BY p.id LIMIT {N_ALERTS}
    """),
        {"run": run_id},
    )
    source = conn.execute(
        text(
            "INSERT INTO news_sources (name, title, homepage, scope) VALUES "
            "('baohanam', 'Báo Hà Nam', 'https://baohanam.com.vn', 'provincial') RETURNING id"
        )
    ).scalar_one()
    conn.execute(
        text(f"""
        INSERT INTO articles (source_id, url, canonical_url, title, lead, text, published_at, language, content_hash, relevant)
        SELECT :src, 'https://baohanam.com.vn/a/' || g, 'https://baohanam.com.vn/a/' || g,
               'Tin số ' || g || ' về xã Liêm Tuyền', 'Sapo ' || g, 'Nội dung bài ' || g,
               timestamptz '2025-07-01 08:00+07' + ((g % 5) || ' days')::interval, 'vi', md5(g::text), true
        FROM generate_series(1, {N_ARTICLES}) g
    """),
        {"src": source},
    )
    conn.execute(
        text("""
        INSERT INTO article_scores (article_id, model_version, label, probabilities, topic)
        SELECT a.id, 'test-1', (ARRAY['negative','neutral','positive'])[1 + a.id % 3],
               '{"negative": 0.2, "neutral": 0.6, "positive": 0.2}'::jsonb, 'land'
        FROM articles a
    """)
    )
    conn.execute(
        text("""
        INSERT INTO article_places (article_id, admin_unit_id, mention, confidence)
        SELECT a.id, u.id, u.name, 0.9 FROM articles a
        JOIN admin_units u ON u.code = CASE WHEN a.id % 2 = 0 THEN '13285' ELSE '13288' END
    """)
    )
    conn.execute(text("ANALYZE"))
