"""Vietnamese text encoding and normalisation, shared by ``gis`` (cadastre attributes) and
``nlp``/``crawler`` (news text). Pure Python, offline, and imports nothing else of the project,
so both domain cores may depend on it (docs/architecture.md).

* Unicode: NFC, tone marks on one vowel (``hoà`` → ``hòa``), spaces and control characters,
  ASCII folding for matching.
* Legacy encodings: TCVN3 (TCVN 5712:1993), VNI-Windows, Windows-1258 and UTF-8 mojibake,
  detected by how Vietnamese the converted text reads, and converted to Unicode.

>>> normalize_text("Hoà Mạc, thuỷ lợi")
'Hòa Mạc, thủy lợi'
>>> repair_legacy("Hµ Néi")
('Hà Nội', 'tcvn3')
>>> repair_legacy("Thaønh phoá Phuû Lyù")
('Thành phố Phủ Lý', 'vni')
>>> repair_legacy("Đồng Văn")
('Đồng Văn', None)
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "TCVN3_DECODE",
    "VNI_TABLE",
    "decode_bytes",
    "decode_tcvn3",
    "decode_vni",
    "encode_legacy",
    "is_vietnamese_syllable",
    "normalize_text",
    "normalize_tone_marks",
    "repair_legacy",
    "strip_diacritics",
    "vietnamese_ratio",
    "vietnamese_score",
]

# ---------------------------------------------------------------------------------------------
# Letters and tone marks
# ---------------------------------------------------------------------------------------------

_TONE_MARKS = {"\u0300": 1, "\u0301": 2, "\u0303": 3, "\u0309": 4, "\u0323": 5}
_TONE_BY_INDEX = {v: k for k, v in _TONE_MARKS.items()}
_VOWELS = set("aăâeêioôơuưy")
_SHAPED_VOWELS = set("ăâêôơư")
_VI_LOWER = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
_VI_LETTERS = set(_VI_LOWER + _VI_LOWER.upper())
# letters that only Vietnamese (not plain ASCII) uses
_VI_DIACRITIC = set(c for c in _VI_LETTERS if ord(c) > 127)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


@lru_cache(maxsize=512)
def _split_tone(ch: str) -> tuple[str, int]:
    """Return (letter without tone, tone index 0..5) of one lower-case letter."""
    nfd = unicodedata.normalize("NFD", ch)
    tone = 0
    kept = []
    for c in nfd:
        if c in _TONE_MARKS:
            tone = _TONE_MARKS[c]
        else:
            kept.append(c)
    return unicodedata.normalize("NFC", "".join(kept)), tone


@lru_cache(maxsize=512)
def _with_tone(base: str, tone: int) -> str:
    if tone == 0:
        return base
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", base) + _TONE_BY_INDEX[tone])


def _tone_position(base: str, style: str) -> int | None:
    """Index in ``base`` (a toneless lower-case syllable) where the tone mark belongs."""
    n = len(base)
    start = 0
    while start < n and base[start] not in _VOWELS:
        start += 1
    if start == n:
        return None
    # "qu" and "gi" before another vowel: the u / i belong to the onset
    if (
        start > 0
        and start + 1 < n
        and base[start + 1] in _VOWELS
        and (
            (base[start - 1] == "q" and base[start] == "u")
            or (base[start - 1] == "g" and base[start] == "i")
        )
    ):
        start += 1
    end = start
    while end < n and base[end] in _VOWELS:
        end += 1
    coda = base[end:]
    if any(c in _VOWELS for c in coda) or end - start > 3:
        return None
    nucleus = base[start:end]
    shaped = [i for i, c in enumerate(nucleus) if c in _SHAPED_VOWELS]
    if shaped:
        return start + shaped[-1]
    if coda:
        return end - 1
    if len(nucleus) == 1:
        return start
    if len(nucleus) == 2:
        if style == "new" and nucleus in ("oa", "oe", "uy"):
            return start + 1
        return start
    return start + 1


@lru_cache(maxsize=200_000)
def _normalize_syllable(word: str, style: str) -> str:
    lower = word.lower()
    if not all(c in _VI_LETTERS for c in word):
        return word
    bases, tones = [], []
    for c in lower:
        b, t = _split_tone(c)
        bases.append(b)
        tones.append(t)
    marked = [t for t in tones if t]
    if len(marked) != 1:
        return word
    base = "".join(bases)
    if len(base) != len(word):
        return word
    pos = _tone_position(base, style)
    if pos is None or tones[pos]:
        return word
    tone = marked[0]
    out = []
    for i, (orig, b) in enumerate(zip(word, bases, strict=True)):
        c = _with_tone(b, tone) if i == pos else b
        out.append(c.upper() if orig.isupper() else c)
    return "".join(out)


def normalize_tone_marks(text: str, style: str = "old") -> str:
    """Put every syllable's tone mark on the same vowel (``hoà`` → ``hòa`` in the old style).

    Parameters
    ----------
    text : str
        NFC text.
    style : {"old", "new"}
        "old" (hòa, thủy, khỏe — the style of the national gazetteer) or "new" (hoà, thuỷ).

    Examples
    --------
    >>> normalize_tone_marks("hoà thuỷ khoẻ quý hoàn")
    'hòa thủy khỏe quý hoàn'
    >>> normalize_tone_marks("hòa thủy", style="new")
    'hoà thuỷ'
    """
    return _WORD_RE.sub(lambda m: _normalize_syllable(m.group(0), style), text)


_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CONTROL_RE = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufeff]")


def normalize_text(text: str, tone_style: str = "old", repair: bool = True) -> str:
    """NFC, legacy encodings repaired, tone marks placed consistently, spaces collapsed.

    Examples
    --------
    >>> normalize_text("Ho\u0300a  Ma\u0323c")
    'Hòa Mạc'
    """
    if repair:
        text, _ = repair_legacy(text)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_RE.sub(" ", text)
    text = normalize_tone_marks(text, tone_style)
    text = _SPACES_RE.sub(" ", text)
    text = re.sub(r" *\n[ \n]*", "\n", text)
    return text.strip()


def strip_diacritics(text: str) -> str:
    """ASCII folding for matching: ``Hòa Mạc`` → ``Hoa Mac``, ``đ`` → ``d``.

    >>> strip_diacritics("Đồng Văn, Hòa Mạc")
    'Dong Van, Hoa Mac'
    """
    nfd = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in nfd if not unicodedata.combining(c))


# ---------------------------------------------------------------------------------------------
# Legacy encodings: TCVN3 (TCVN 5712:1993), VNI-Windows, Windows-1258, UTF-8 mojibake
# ---------------------------------------------------------------------------------------------

# TCVN 5712:1993 byte -> character (generated from glibc iconv's TCVN5712-1 table; the VN3
# "ABC" fonts use the 0xA1-0xFF part, upper-case glyphs come from the same codes in a capital
# font). Bytes not listed are ASCII / Latin-1 identical.
_TCVN_BYTES = (
    b"\x01\x02\x04\x05\x06\x11\x12\x13\x14\x15\x16\x17\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89"
    b"\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
    b"\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb5\xb6\xb7\xb8\xb9\xba\xbb"
    b"\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1"
    b"\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7"
    b"\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfe\xff"
)
_TCVN_CHARS = (
    "ÚỤỪỬỮỨỰỲỶỸÝỴÀẢÃÁẠẶẬÈẺẼÉẸỆÌỈĨÍỊÒỎÕÓỌỘỜỞỠỚỢÙỦŨĂÂÊÔƠƯĐăâêôơưđẰàảãáạẲằẳẵắẴẮẦẨẪẤỀặầẩẫấậèỂẻẽéẹ"
    "ềểễếệìỉỄẾỒĩíịòỔỏõóọồổỗốộờởỡớợùỖủũúụừửữứựỳỷỹỵỐ"
)
TCVN3_DECODE: dict[int, str] = dict(zip(_TCVN_BYTES, _TCVN_CHARS, strict=True))

# VNI-Windows: a base letter followed by one modifier byte (shown here as the Latin-1 glyph
# that the byte displays as); a few letters have a byte of their own.
_VNI_TONES = {"ù": 2, "ø": 1, "û": 4, "õ": 3, "ï": 5}  # acute, grave, hook, tilde, dot
_VNI_HAT = {"â": 0, "á": 2, "à": 1, "å": 4, "ã": 3, "ä": 5}  # circumflex + tone
_VNI_BREVE = {"ê": 0, "é": 2, "è": 1, "ú": 4, "ü": 3, "ë": 5}  # breve + tone (after a)
_VNI_SINGLE = {
    "ô": "ơ",
    "ö": "ư",
    "ñ": "đ",
    "ì": "ì",
    "í": "í",
    "æ": "ỉ",
    "ó": "ĩ",
    "ò": "ị",
    "î": "ỵ",
}


def _build_vni_table() -> dict[str, str]:
    table: dict[str, str] = {}

    def add(seq: str, char: str) -> None:
        table[seq] = char
        table[seq.upper()] = char.upper()
        if len(seq) > 1:  # a capital base letter with a lower-case modifier byte
            table[seq[0].upper() + seq[1:]] = char.upper()

    for base in "aeiouy":
        for mod, tone in _VNI_TONES.items():
            add(base + mod, _with_tone(base, tone))
    for base, hatted in (("a", "â"), ("e", "ê"), ("o", "ô")):
        for mod, tone in _VNI_HAT.items():
            add(base + mod, _with_tone(hatted, tone))
    for mod, tone in _VNI_BREVE.items():
        add("a" + mod, _with_tone("ă", tone))
    for seq, char in _VNI_SINGLE.items():
        add(seq, char)
    for seq, horned in (("ô", "ơ"), ("ö", "ư")):
        for mod, tone in _VNI_TONES.items():
            add(seq + mod, _with_tone(horned, tone))
    return table


VNI_TABLE = _build_vni_table()
_VNI_RE = re.compile("|".join(re.escape(k) for k in sorted(VNI_TABLE, key=len, reverse=True)))
_VNI_SIGNATURE_RE = re.compile(
    r"[aeiouyAEIOUY][øùûõïØÙÛÕÏ]|[aeoAEO][âáàåãäÂÁÀÅÃÄ]|[aA][êéèúüëÊÉÈÚÜË]"
)
# characters of Latin-1 that Vietnamese Unicode text never uses (legacy-font tell-tales)
_VI_LATIN1 = set("ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúý")
_ODD_RE = re.compile(
    "["
    + "".join(c for c in map(chr, range(0xA0, 0x100)) if c not in _VI_LATIN1)
    + "\u0080-\u009f\ufffd]"
)
_MOJIBAKE_RE = re.compile(r"Ã[\u0080-\u00bf]|Ä[\u0080-\u00bf]|á[º»][\u0080-\u00bf]|Æ[°¡¯]")


def decode_vni(text: str) -> str:
    """Convert VNI-Windows text (as its bytes display in a Latin-1 font) to Unicode.

    >>> decode_vni("Thaønh phoá Phuû Lyù")
    'Thành phố Phủ Lý'
    """
    return _VNI_RE.sub(lambda m: VNI_TABLE[m.group(0)], text)


def decode_tcvn3(data: bytes) -> str:
    """Decode TCVN3 (TCVN 5712:1993) bytes.

    >>> decode_tcvn3("Hµ Néi".encode("latin-1"))
    'Hà Nội'
    """
    return "".join(TCVN3_DECODE.get(b, chr(b)) for b in data)


def _to_bytes(text: str) -> bytes:
    """Bytes as a legacy page would have held them: cp1252 where it can, else Latin-1."""
    out = bytearray()
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            out.append(o)
            continue
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if o < 0x100:
                out.append(o)
            else:
                raise
    return bytes(out)


_SYLLABLE_RE = re.compile(
    r"^(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnpqrstvx])?"
    r"(?:a|ă|â|e|ê|i|o|ô|ơ|u|ư|y|ai|ao|au|ay|âu|ây|eo|êu|ia|iê|iu|oa|oă|oe|oi|oo|ôi|ơi|ua|uâ|uê|"
    r"ui|uô|uơ|uy|ưa|ưi|ươ|ưu|yê|oai|oay|oeo|uây|uôi|uya|uyê|uyu|ươi|ươu|yêu|iêu)"
    r"(?:c|ch|m|n|ng|nh|p|t)?$"
)


@lru_cache(maxsize=65536)
def is_vietnamese_syllable(word: str) -> bool:
    """True when ``word`` is a well-formed Vietnamese syllable (at most one tone mark).

    >>> is_vietnamese_syllable("Nguyễn"), is_vietnamese_syllable("chýỡc")
    (True, False)
    """
    lower = word.lower()
    tones = 0
    bases = []
    for c in lower:
        if c not in _VI_LETTERS:
            return False
        b, t = _split_tone(c)
        tones += t > 0
        bases.append(b)
    return tones <= 1 and bool(_SYLLABLE_RE.match("".join(bases)))


def _syllable_counts(text: str) -> tuple[int, int, int]:
    """(well-formed syllables with diacritics, malformed non-ASCII words, odd characters)."""
    good = bad = 0
    for w in _WORD_RE.findall(text):
        if not any(c in _VI_DIACRITIC for c in w) and all(ord(c) < 128 for c in w):
            continue
        if is_vietnamese_syllable(w):
            good += 1
        else:
            bad += 1
    return good, bad, len(_ODD_RE.findall(text))


def vietnamese_score(text: str) -> float:
    """How Vietnamese-Unicode a text looks: well-formed syllables carrying Vietnamese
    diacritics, minus malformed ones and odd characters (legacy-font glyphs, C1 controls,
    replacement characters)."""
    good, bad, odd = _syllable_counts(text)
    return good - bad - 2.0 * odd


def _candidates(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if _VNI_SIGNATURE_RE.search(text):
        out.append(("vni", decode_vni(text)))
    try:
        raw = _to_bytes(text)
    except UnicodeEncodeError:
        return out  # holds characters no single-byte legacy page can: already Unicode
    if _MOJIBAKE_RE.search(text):
        try:
            out.append(("utf-8-mojibake", raw.decode("utf-8")))
        except UnicodeDecodeError:
            pass
    if _ODD_RE.search(text):
        out.append(("tcvn3", decode_tcvn3(raw)))
        out.append(("windows-1258", unicodedata.normalize("NFC", raw.decode("cp1258", "replace"))))
    return out


def repair_legacy(text: str) -> tuple[str, str | None]:
    """Detect text typed in a legacy Vietnamese encoding and convert it to Unicode.

    Handles TCVN3, VNI-Windows and Windows-1258 pages read as Latin-1/cp1252, and UTF-8 read
    as cp1252 (mojibake). Text that already reads as Vietnamese Unicode is returned unchanged.

    Returns
    -------
    (text, encoding) : tuple
        The repaired text and the detected legacy encoding, or the input and None.
    """
    if not text:
        return text, None
    text = unicodedata.normalize("NFC", text)
    candidates = _candidates(text)
    if not candidates:
        return text, None
    best, best_enc, best_score = text, None, vietnamese_score(text)
    for enc, cand in candidates:
        good, bad, odd = _syllable_counts(cand)
        score = good - bad - 2.0 * odd
        if good == 0 or bad > 0.25 * good or (good == 1 and (bad or odd)):
            continue  # the conversion does not read as Vietnamese either (French, German...);
            # one clean syllable is enough for short fields ("Hµ Nam" → "Hà Nam")
        if score > best_score + 1:
            best, best_enc, best_score = cand, enc, score
    return unicodedata.normalize("NFC", best), best_enc


def encode_legacy(text: str, encoding: str) -> bytes:
    """Encode Unicode text the way a legacy Vietnamese tool would (for tests and exports).

    ``encoding`` is "tcvn3", "vni" or "windows-1258" (tone marks as combining bytes).

    >>> decode_tcvn3(encode_legacy("Phủ Lý", "tcvn3"))
    'Phủ Lý'
    """
    text = unicodedata.normalize("NFC", text)
    if encoding == "tcvn3":
        rev = {c: b for b, c in TCVN3_DECODE.items()}
        out = bytearray()
        for ch in text:
            if ch in rev:
                out.append(rev[ch])
            elif ch.lower() in rev and ch.lower() != ch:  # capital glyph from a capital font
                out.append(rev[ch.lower()])
            else:
                out += ch.encode("latin-1", "replace")
        return bytes(out)
    if encoding == "vni":
        rev_vni = {}
        for seq, ch in VNI_TABLE.items():
            if seq == seq.lower() or seq == seq.upper():
                rev_vni.setdefault(ch, seq)
        return "".join(rev_vni.get(ch, ch) for ch in text).encode("cp1252", "replace")
    if encoding == "windows-1258":
        out = bytearray()
        for ch in text:
            try:
                out += ch.encode("cp1258")
                continue
            except UnicodeEncodeError:
                pass
            base, tone = _split_tone(ch.lower())
            if ch.isupper():
                base = base.upper()
            out += base.encode("cp1258", "replace") + _TONE_BY_INDEX[tone].encode("cp1258")
        return bytes(out)
    raise ValueError(f"unknown legacy encoding {encoding!r}: use tcvn3, vni or windows-1258")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode a document of unknown encoding: UTF-8 (with BOM), UTF-16, else the legacy
    Vietnamese encoding whose decoding reads most like Vietnamese.

    >>> decode_bytes(encode_legacy("Hà Nội", "windows-1258"))
    ('Hà Nội', 'windows-1258')
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return unicodedata.normalize("NFC", data[3:].decode("utf-8", "replace")), "utf-8"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return unicodedata.normalize("NFC", data.decode("utf-16", "replace")), "utf-16"
    try:
        return unicodedata.normalize("NFC", data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    cands = [
        ("windows-1258", unicodedata.normalize("NFC", data.decode("cp1258", "replace"))),
        ("tcvn3", decode_tcvn3(data)),
        ("vni", decode_vni(data.decode("cp1252", "replace"))),
    ]
    enc, text = max(cands, key=lambda c: vietnamese_score(c[1]))
    return text, enc


# ---------------------------------------------------------------------------------------------
# Language check
# ---------------------------------------------------------------------------------------------


def vietnamese_ratio(text: str) -> float:
    """Share of word tokens that carry a Vietnamese diacritic (≈0.5–0.8 for Vietnamese prose,
    ≈0 for English)."""
    words = _WORD_RE.findall(text[:20_000])
    if not words:
        return 0.0
    return sum(1 for w in words if any(c in _VI_DIACRITIC for c in w)) / len(words)
