"""Places: link an article to the administrative units of a gazetteer it mentions.

The gazetteer is configuration (a JSON file; nothing about any province is written here). It
knows old units (before a reform, e.g. the 2025 merger) and new ones, and the crosswalk from
old communes to new ones. Names are matched with and without diacritics; a unit-type prefix
("xã", "phường", "huyện", "TP."...) or a mention of the unit's district or province is needed
before a short, common name counts, because many communes across Vietnam share a name. When
underthesea's NER (offline, bundled CRF) is enabled it settles bare mentions: a name inside a
person entity is dropped, inside a location entity it gains confidence.

Output per place: ``{"code", "name", "level", "valid": "old"|"new", "mention", "confidence"}``
plus ``"successors"`` (new codes) for old communes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp.errors import GazetteerError
from nlp.text import normalize_text, split_sentences, strip_diacritics, vietnamese_ratio

# unit-type prefixes (lower case, with and without diacritics) -> levels they can introduce
_PREFIXES: dict[str, tuple[str, ...]] = {
    "xã": ("commune",),
    "xa": ("commune",),
    "phường": ("commune",),
    "phuong": ("commune",),
    "p.": ("commune",),
    "thị trấn": ("commune",),
    "thi tran": ("commune",),
    "tt.": ("commune",),
    "huyện": ("district",),
    "huyen": ("district",),
    "thị xã": ("district",),
    "thi xa": ("district",),
    "tx.": ("district",),
    "tx": ("district",),
    "thành phố": ("district", "province"),
    "thanh pho": ("district", "province"),
    "tp.": ("district", "province"),
    "tp": ("district", "province"),
    "tỉnh": ("province",),
    "tinh": ("province",),
}
# words that, right before a name, say it is a street, a school or a person — not a unit
_NOT_A_UNIT_BEFORE = {
    "đường",
    "duong",
    "phố",
    "pho",
    "ông",
    "ong",
    "bà",
    "ba",
    "anh",
    "chị",
    "chi",
    "cụ",
    "cu",
    "trường",
    "truong",
    "thpt",
    "thcs",
    "chùa",
    "chua",
    "cầu",
    "cau",
    "công ty",
    "cong ty",
    "khu",
    "ngõ",
    "ngo",
    "hẻm",
    "hem",
    "tên",
    "ten",
    "em",
    "cháu",
    "chau",
    "bạn",
    "ban",
}
_TYPE_LEVEL = {
    "xã": "commune",
    "phường": "commune",
    "thị trấn": "commune",
    "huyện": "district",
    "thị xã": "district",
    "thành phố": "district",
    "quận": "district",
    "tỉnh": "province",
}
_BASE_CONFIDENCE = {
    "prefixed": 0.6,
    "bare_province": 0.8,
    "bare_district": 0.55,
    "bare_commune": 0.3,
}
_CONTEXT_BONUS = 0.3
_FOREIGN_PARENT_RE = re.compile(
    r"\s*[,(-]\s*(?i:(huyện|quận|thị xã|thành phố|tp\.?|tỉnh|huyen|quan|thi xa|thanh pho|tinh))\s+"
    r"((?:[A-ZÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬĐÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴ]\w*\s?){1,4})"
)
_NER_LOC_BONUS = 0.15


@dataclass(frozen=True)
class Unit:
    """One administrative unit of the gazetteer."""

    code: str
    name: str
    level: str  # province | district | commune
    unit_type: str  # xã, phường, huyện, tỉnh...
    valid: str  # old | new
    ancestors: tuple[str, ...] = ()  # codes of the district/province it lies in (same era)
    successors: tuple[str, ...] = ()  # new codes of an old unit
    predecessors: tuple[str, ...] = ()  # old codes merged into a new unit


@dataclass
class Gazetteer:
    """Units and a name index built from a gazetteer JSON file."""

    units: dict[tuple[str, str], Unit]  # (valid, code) -> unit
    reform_date: dt.date | None = None
    _names: dict[str, list[Unit]] = field(default_factory=dict)
    _pattern: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        names: dict[str, list[Unit]] = {}
        for unit in self.units.values():
            for alias in {unit.name.lower(), strip_diacritics(unit.name).lower()}:
                names.setdefault(alias, []).append(unit)
        self._names = names
        alts = sorted(names, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w])(" + "|".join(re.escape(a) for a in alts) + r")(?![\w])", re.IGNORECASE
        )

    @property
    def pattern(self) -> re.Pattern[str]:
        assert self._pattern is not None
        return self._pattern

    def candidates(self, alias: str) -> list[Unit]:
        return self._names.get(alias.lower(), [])


def _type_from_full_name(full_name: str, name: str) -> str:
    prefix = full_name[: max(0, len(full_name) - len(name))].strip().lower()
    return prefix or ""


def load_gazetteer(path: Path) -> Gazetteer:
    """Read a gazetteer JSON file.

    Two layouts are accepted: ``{"units": [{"code", "name", "level", "type", "valid",
    "parent_codes", "successors"}...], "reform_date": "YYYY-MM-DD"}``, or the layout of
    ``data/admin/gazetteer_*.json`` (``province_old`` with its ``successor``,
    ``districts_old``, ``communes_old`` with ``new_codes``, ``communes_new_*`` with
    ``old_members``).

    Raises
    ------
    GazetteerError
        When the file is missing, not JSON or lacks the fields above.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GazetteerError(f"gazetteer {path} does not exist") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise GazetteerError(f"gazetteer {path} is not readable JSON: {exc}") from exc
    try:
        if "units" in raw:
            return _load_generic(raw)
        return _load_admin_layout(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise GazetteerError(f"gazetteer {path} lacks an expected field: {exc}") from exc


def _load_generic(raw: dict[str, Any]) -> Gazetteer:
    units = {}
    for u in raw["units"]:
        unit = Unit(
            code=str(u["code"]),
            name=normalize_text(u["name"]),
            level=u["level"],
            unit_type=u.get("type", ""),
            valid=u.get("valid", "new"),
            ancestors=tuple(map(str, u.get("parent_codes", []))),
            successors=tuple(map(str, u.get("successors", []))),
        )
        units[(unit.valid, unit.code)] = unit
    reform = raw.get("reform_date")
    return Gazetteer(units, dt.date.fromisoformat(reform) if reform else None)


def _load_admin_layout(raw: dict[str, Any]) -> Gazetteer:
    units: dict[tuple[str, str], Unit] = {}
    prov = raw["province_old"]
    prov_name = normalize_text(prov["name"])
    ptype = _type_from_full_name(prov_name, prov_name.split(" ", 1)[1])
    units[("old", prov["code"])] = Unit(
        prov["code"],
        prov_name.split(" ", 1)[1],
        "province",
        ptype,
        "old",
        successors=(prov["successor"]["code"],) if prov.get("successor") else (),
    )
    reform = None
    if prov.get("successor"):
        succ = prov["successor"]
        sname = normalize_text(succ["name"])
        units[("new", succ["code"])] = Unit(
            succ["code"],
            sname.split(" ", 1)[1],
            "province",
            "tỉnh",
            "new",
            predecessors=(prov["code"],),
        )
        reform = dt.date.fromisoformat(succ["effective"]) if succ.get("effective") else None
    for d in raw.get("districts_old", []):
        name = normalize_text(d["name"])
        units[("old", d["code"])] = Unit(
            d["code"],
            name,
            "district",
            normalize_text(d.get("type", "")).lower(),
            "old",
            ancestors=(prov["code"],),
        )
    for c in raw.get("communes_old", []):
        name = normalize_text(c["old_name"])
        succ = tuple(x for x in str(c.get("new_codes", "")).split("|") if x)
        units[("old", c["old_code"])] = Unit(
            c["old_code"],
            name,
            "commune",
            normalize_text(c.get("old_type", "")).lower(),
            "old",
            ancestors=(c["old_district_code"], prov["code"]),
            successors=succ,
        )
    new_prov = prov.get("successor", {}).get("code")
    for key, rows in raw.items():
        if not key.startswith("communes_new"):
            continue
        for c in rows:
            name = normalize_text(c["new_name"])
            members = tuple(m.split(":")[0] for m in str(c.get("old_members", "")).split("|") if m)
            units[("new", c["new_code"])] = Unit(
                c["new_code"],
                name,
                "commune",
                normalize_text(c.get("new_type", "")).lower(),
                "new",
                ancestors=(new_prov,) if new_prov else (),
                predecessors=members,
            )
    return Gazetteer(units, reform)


@dataclass
class _Mention:
    unit: Unit
    mention: str
    start: int
    prefixed: bool
    confidence: float = 0.0


class PlaceFinder:
    """Find gazetteer units in text.

    Parameters
    ----------
    gazetteer : Gazetteer
    use_ner : bool
        Ask underthesea's NER about bare (unprefixed) mentions, at most ``max_ner_sentences``
        sentences per document (NER costs ~0.5 ms per character).
    min_confidence : float
        Places below it are dropped.
    """

    def __init__(
        self,
        gazetteer: Gazetteer,
        use_ner: bool = True,
        min_confidence: float = 0.5,
        max_ner_sentences: int = 2,
    ) -> None:
        self.gazetteer = gazetteer
        self.use_ner = use_ner
        self.min_confidence = min_confidence
        self.max_ner_sentences = max_ner_sentences

    def _era(self, published: dt.date | None) -> str:
        reform = self.gazetteer.reform_date
        if reform is None:
            return "new"
        when = published or dt.date.today()
        return "new" if when >= reform else "old"

    def find(
        self, text: str, published: dt.date | str | None = None, normalized: bool = False
    ) -> list[dict[str, Any]]:
        """Places mentioned in ``text``, best first.

        ``published`` (date or ISO string) chooses between an old and a new unit of the same
        name: news before the reform date means the old unit. ``normalized=True`` skips the
        text normalisation when the caller has already done it.
        """
        if not normalized:
            text = normalize_text(text)
        if isinstance(published, str):
            try:
                published = dt.date.fromisoformat(published[:10])
            except ValueError:
                published = None
        era = self._era(published)
        folded = vietnamese_ratio(text) < 0.1  # text typed without diacritics
        hay = strip_diacritics(text) if folded else text
        lower = hay.lower()
        found: list[_Mention] = []
        for m in self.gazetteer.pattern.finditer(hay):
            alias = m.group(1)
            if (
                not folded
                and all(ord(ch) < 128 for ch in alias)
                and all(u.name != alias for u in self.gazetteer.candidates(alias))
            ):
                continue  # an undiacritised name inside diacritised text: not the unit
            before = lower[max(0, m.start() - 12) : m.start()].rstrip()
            prefix_levels: tuple[str, ...] = ()
            for p, levels in _PREFIXES.items():
                if before.endswith(p) and (
                    len(before) == len(p) or not before[-len(p) - 1].isalnum()
                ):
                    prefix_levels = levels
                    break
            last_word = before.rsplit(" ", 1)[-1] if before else ""
            last_two = " ".join(before.split(" ")[-2:]) if before else ""
            if not prefix_levels and (
                last_word in _NOT_A_UNIT_BEFORE or last_two in _NOT_A_UNIT_BEFORE
            ):
                continue
            if not prefix_levels and alias[:1].islower() and not folded:
                continue  # common words ("quế", "bình an") written in lower case
            after = hay[m.end() : m.end() + 40]
            fm = _FOREIGN_PARENT_RE.match(after)
            if fm and not any(
                u.level in _PREFIXES.get(fm.group(1).lower(), ())
                for u in self.gazetteer.candidates(fm.group(2).strip())
            ):
                continue  # "xã Thanh Hà, huyện Thanh Hà, tỉnh Hải Dương": another province's unit
            cands = self.gazetteer.candidates(alias)
            if prefix_levels:
                cands = [u for u in cands if u.level in prefix_levels]
            if not cands:
                continue
            unit = _pick(cands, era)
            found.append(_Mention(unit, text[m.start() : m.end()], m.start(), bool(prefix_levels)))
        if not found:
            return []
        codes = {mm.unit.code for mm in found}
        ner_sentences = 0
        ner_cache: dict[int, tuple[set[str], set[str]]] = {}
        sentences = None
        for mm in found:
            u = mm.unit
            if mm.prefixed:
                conf = max(_BASE_CONFIDENCE["prefixed"], _BASE_CONFIDENCE[f"bare_{u.level}"])
            else:
                conf = _BASE_CONFIDENCE[f"bare_{u.level}"]
            context = any(a in codes for a in u.ancestors) or any(
                s in codes for s in u.successors + u.predecessors
            )
            # a new commune's province is mentioned through the old province name, too
            if not context and u.ancestors:
                for a in u.ancestors:
                    for (_, _), other in self.gazetteer.units.items():
                        if (
                            other.level == "province"
                            and other.code in codes
                            and (a in other.successors or a in other.predecessors)
                        ):
                            context = True
            if context:
                conf += _CONTEXT_BONUS
            if (
                not mm.prefixed
                and self.use_ner
                and ner_sentences < self.max_ner_sentences
                and u.level != "province"
                and conf + _NER_LOC_BONUS >= self.min_confidence  # NER could change the outcome
            ):
                if sentences is None:
                    sentences = _sentence_spans(text)
                idx = next((i for i, (s, e) in enumerate(sentences) if s <= mm.start < e), None)
                if idx is not None:
                    if idx not in ner_cache:
                        s, e = sentences[idx]
                        ner_cache[idx] = _ner_entities(text[s:e][:400])
                        ner_sentences += 1
                    locs, pers = ner_cache[idx]
                    if any(mm.mention in p for p in pers):
                        continue
                    if any(mm.mention in loc for loc in locs):
                        conf += _NER_LOC_BONUS
            mm.confidence = min(conf, 0.99)
        best: dict[str, dict[str, Any]] = {}
        for mm in found:
            if mm.confidence < self.min_confidence:
                continue
            u = mm.unit
            key = f"{u.valid}:{u.code}"
            if key in best and best[key]["confidence"] >= mm.confidence:
                continue
            place = {
                "code": u.code,
                "name": u.name,
                "level": u.level,
                "valid": u.valid,
                "mention": mm.mention,
                "confidence": round(mm.confidence, 2),
            }
            if u.successors:
                place["successors"] = list(u.successors)
            best[key] = place
        level_rank = {"commune": 0, "district": 1, "province": 2}
        return sorted(
            best.values(), key=lambda p: (-p["confidence"], level_rank.get(p["level"], 3))
        )


def _pick(cands: list[Unit], era: str) -> Unit:
    """Among same-named units prefer the era of the article, then the finest level."""
    rank = {"commune": 0, "district": 1, "province": 2}
    return sorted(cands, key=lambda u: (u.valid != era, rank.get(u.level, 3)))[0]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for s in split_sentences(text):
        start = text.find(s[:20], pos)
        if start < 0:
            start = pos
        spans.append((start, start + len(s)))
        pos = start + len(s)
    return spans


def _ner_entities(sentence: str) -> tuple[set[str], set[str]]:
    """(location strings, person strings) of one sentence by underthesea's CRF NER."""
    try:
        from underthesea import ner

        tags = ner(sentence)
    except Exception:  # noqa: BLE001 - NER is an aid; without it the gazetteer rules stand
        return set(), set()
    locs: list[str] = []
    pers: list[str] = []
    cur: list[str] = []
    kind = None
    for tok in [*tags, ("", "", "", "O")]:
        word, tag = tok[0], tok[3]
        if tag.startswith("B-") or tag == "O" or (tag.startswith("I-") and tag[2:] != kind):
            if cur and kind == "LOC":
                locs.append(" ".join(cur))
            elif cur and kind == "PER":
                pers.append(" ".join(cur))
            cur, kind = ([word], tag[2:]) if tag != "O" else ([], None)
        else:
            cur.append(word)
    return set(locs), set(pers)
