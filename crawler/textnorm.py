"""Vietnamese text hygiene for extraction: page decoding, legacy encodings, NFC.

The conversion tables and detection live in :mod:`nlp.text` (the NLP package owns Vietnamese
text); this module adapts them to pages: decode the bytes (declared charset, ``<meta>``,
Windows-1258), repair text typed in legacy *font* encodings (TCVN3, VNI) and normalise to NFC
without re-styling tone marks (the stored text stays faithful to the page).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from nlp.text import decode_bytes, repair_legacy, strip_diacritics, vietnamese_ratio

__all__ = [
    "decode_html",
    "normalize",
    "repair_legacy",
    "strip_diacritics",
    "vietnamese_ratio",
]

_WS_RE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CTRL_RE = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufeff\u200c\u200d]")
_LEGACY_HINT_RE = re.compile(r"[\u0080-\u00ff]")


def normalize(text: str | None, repair: bool = True) -> str | None:
    """NFC, legacy glyphs repaired, no control characters, collapsed spaces; None stays None."""
    if text is None:
        return None
    if repair and _LEGACY_HINT_RE.search(text):
        text, _ = repair_legacy(text)
    text = unicodedata.normalize("NFC", text)
    text = _CTRL_RE.sub("", text)
    lines = [_WS_RE.sub(" ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


_META_CHARSET_RE = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def decode_html(body: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode page bytes; return (text, encoding used).

    Valid UTF-8 wins over a wrong declared charset. Otherwise the HTTP-declared charset, then
    the ``<meta charset>`` (Latin-1 read as cp1252, like browsers do); text typed in legacy
    Vietnamese *fonts* (TCVN3, VNI) on such pages is repaired field by field afterwards
    (:func:`normalize`). Undeclared pages go to :func:`nlp.text.decode_bytes`, which picks the
    Vietnamese encoding (Windows-1258, TCVN3, VNI) that reads most like Vietnamese.
    """
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace"), "utf-8"
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    m = _META_CHARSET_RE.search(body[:4096])
    for candidate in (declared, m.group(1).decode("ascii", "ignore") if m else None):
        codec = _codec(candidate)
        if codec in ("latin-1", "iso8859-1", "ascii"):
            codec = "cp1252"  # what browsers do; legacy Vietnamese fonts are repaired later
        if codec and codec != "utf-8":
            try:
                return body.decode(codec), codec
            except UnicodeDecodeError:
                continue
    text, enc = decode_bytes(body)
    return text, enc
