"""The pygeoapi configuration is generated, valid, bilingual, and never holds the secret."""

from __future__ import annotations

import pytest

from api.config import (
    DATABASE_URL_REF,
    build_config,
    collect_table_infos,
    load_config,
    validate,
    write_config,
)
from api.errors import ConfigError
from api.settings import ApiSettings

pytestmark = pytest.mark.postgis


def test_generated_config_is_valid_and_written_without_secrets(
    api_engine, api_database_url, tmp_path, monkeypatch
):
    infos = collect_table_infos(api_engine)
    config = build_config(infos, ApiSettings())
    validate(config)
    assert set(config["resources"]) >= {
        "admin-units",
        "parcels",
        "land-changes",
        "parcel-alerts",
        "articles",
        "commune-sentiment",
        "land-change-detection",
        "sentiment-scoring",
        "daily-digest",
    }
    parcels = config["resources"]["parcels"]
    assert parcels["title"] == {"vi": "Thửa đất địa chính", "en": "Cadastral parcels"}
    assert parcels["providers"][0]["name"] == "api.plugins.PostGISProvider"
    assert parcels["providers"][0]["storage_crs"].endswith("/5897")
    assert parcels["extents"]["temporal"]["begin"].isoformat() == "2024-12-31T17:01:00+00:00"
    path = write_config(config, tmp_path / "pygeoapi.yml")
    text = path.read_text(encoding="utf-8")
    password = api_database_url.split("@")[0].rsplit(":", 1)[-1]
    assert password not in text and DATABASE_URL_REF in text
    monkeypatch.setenv("IOC_DATABASE_URL", api_database_url)
    loaded = load_config(path)
    assert (
        loaded["resources"]["parcels"]["providers"][0]["options"]["database_url"]
        == api_database_url
    )
    with pytest.raises(ConfigError, match="credentials"):
        write_config(build_config(infos, ApiSettings(), api_database_url), tmp_path / "secret.yml")


def test_demo_stage_writes_a_validated_config(api_engine, api_database_url, tmp_path):
    from api.demo import demo_stage

    lines: list[str] = []

    class Ctx:
        engine = api_engine
        database_url = api_database_url
        state_dir = tmp_path
        data_dir = tmp_path
        echo = staticmethod(lines.append)

    demo_stage(Ctx())
    assert (tmp_path / "api" / "pygeoapi.yml").exists()
    assert any(line.strip().startswith("parcels: 1200 features") for line in lines)
