from __future__ import annotations

import json

import pytest

from nlp.errors import GazetteerError
from nlp.places import PlaceFinder, load_gazetteer
from nlp.settings import DEFAULT_GAZETTEER


@pytest.fixture(scope="module")
def finder() -> PlaceFinder:
    return PlaceFinder(load_gazetteer(DEFAULT_GAZETTEER), use_ner=True)


def codes(places):
    return {(p["code"], p["valid"]) for p in places}


def test_gazetteer_loads_old_and_new_units():
    gaz = load_gazetteer(DEFAULT_GAZETTEER)
    levels = {(u.level, u.valid) for u in gaz.units.values()}
    assert {
        ("province", "old"),
        ("province", "new"),
        ("district", "old"),
        ("commune", "old"),
        ("commune", "new"),
    } <= levels
    assert gaz.reform_date.isoformat() == "2025-07-01"


def test_prefixed_commune_with_district_context(finder):
    places = finder.find(
        "Người dân xã Thanh Hà, huyện Thanh Liêm, tỉnh Hà Nam phản đối dự án.", "2024-05-01"
    )
    first = places[0]
    assert (first["code"], first["level"], first["valid"]) == ("13453", "commune", "old")
    assert first["successors"] == ["13456"]  # the 2025 crosswalk
    assert first["confidence"] >= 0.8
    assert set(first) >= {"code", "name", "level", "valid", "mention", "confidence"}


def test_same_named_unit_of_another_province_is_rejected(finder):
    assert finder.find("Xã Thanh Hà, huyện Thanh Hà, tỉnh Hải Dương có vải thiều ngon.") == []


def test_bare_common_name_needs_context(finder):
    # "Quang Trung", "Bình An" are communes here and names of streets and people everywhere
    assert finder.find("Ông Quang Trung cho biết giá quế tăng mạnh.") == []
    assert finder.find("Trên đường Lê Hồng Phong xảy ra va chạm.") == []


def test_new_unit_after_reform_and_without_diacritics(finder):
    places = finder.find("UBND phường Phủ Lý (tỉnh Ninh Bình) tổ chức họp dân.", "2025-09-01")
    assert ("13285", "new") in codes(places)
    folded = finder.find("Nguoi dan xa Kim Binh, thanh pho Phu Ly phan doi.", "2024-01-01")
    assert ("13426", "old") in codes(folded)
    assert ("347", "old") in codes(folded)


def test_old_name_in_old_news_maps_to_old_unit(finder):
    places = finder.find("Hà Nam: khánh thành cầu mới ở Đồng Văn, Duy Tiên.", "2020-03-01")
    assert ("35", "old") in codes(places)
    assert ("349", "old") in codes(places)


def test_gazetteer_path_is_configuration(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(
        json.dumps(
            {
                "units": [
                    {"code": "1", "name": "Tỉnh Mẫu", "level": "province", "valid": "new"},
                    {
                        "code": "11",
                        "name": "Hòa Bình",
                        "level": "commune",
                        "type": "xã",
                        "valid": "new",
                        "parent_codes": ["1"],
                    },
                ]
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    finder = PlaceFinder(load_gazetteer(g), use_ner=False)
    places = finder.find("Nông dân xã Hoà Bình được mùa.")
    assert [p["code"] for p in places] == ["11"]


def test_bad_gazetteer(tmp_path):
    with pytest.raises(GazetteerError, match="does not exist"):
        load_gazetteer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(GazetteerError, match="not readable JSON"):
        load_gazetteer(bad)
