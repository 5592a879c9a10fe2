"""vntext: the examples in its docstrings, and the legacy round trips both domain cores rely on."""

from __future__ import annotations

import doctest

import pytest

import vntext


def test_docstring_examples() -> None:
    result = doctest.testmod(vntext, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0


@pytest.mark.parametrize("encoding", ["tcvn3", "vni", "windows-1258"])
@pytest.mark.parametrize(
    "text", ["Thành phố Phủ Lý", "Xã Đồng Văn, huyện Duy Tiên", "ĐẤT TRỒNG LÚA"]
)
def test_legacy_bytes_decode_back(encoding: str, text: str) -> None:
    data = vntext.encode_legacy(text, encoding)
    assert vntext.decode_bytes(data) == (text, encoding)


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_legacy_text_read_as_latin1_is_repaired(encoding: str) -> None:
    # what GDAL gives for a DBF without a code page: the legacy bytes as Latin-1/cp1252
    shown = vntext.encode_legacy("Thôn Nhì, xã Hòa Mạc", encoding).decode("cp1252")
    assert vntext.repair_legacy(shown) == ("Thôn Nhì, xã Hòa Mạc", encoding)


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("Hµ Nam", "Hà Nam"),
        ("Lª V¨n B", "Lê Văn B"),
        ("Nguyeãn Vaên A", "Nguyễn Văn A"),
    ],
)
def test_short_cadastre_fields_are_repaired(shown: str, expected: str) -> None:
    # owner and place names are two or three syllables: one clean syllable must be enough
    assert vntext.repair_legacy(shown)[0] == expected


def test_foreign_text_is_left_alone() -> None:
    for text in (
        "Crème brûlée à la française",
        "Straße und Größe",
        "plain ASCII",
        "café",
        "Zürich",
        "São Paulo",
        "Björk",
        "résumé",
    ):
        assert vntext.repair_legacy(text) == (text, None)
