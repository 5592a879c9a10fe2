"""Relevance: does an article concern the province? Gazetteer places + keyword rules.

Places come from :class:`nlp.places.PlaceFinder` (old and new unit names, with and without
diacritics, prefix and context rules). Keyword rules are configuration (YAML)::

    include: ["Hà Nam", "Ninh Bình", "sông Đáy"]   # any match makes an article relevant
    exclude: ["Hà Nam Ninh cũ"]                     # a match vetoes (checked first)
    min_place_confidence: 0.6

Terms match case-insensitively, with or without diacritics, on word boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crawler.errors import CrawlerError
from nlp.places import PlaceFinder, load_gazetteer
from nlp.text import strip_diacritics

__all__ = ["KeywordRules", "RelevanceFilter", "load_keyword_rules"]


class KeywordRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    min_place_confidence: float = Field(default=0.6, ge=0, le=1)


def load_keyword_rules(path: str | Path | None) -> KeywordRules:
    if path is None:
        return KeywordRules()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return KeywordRules.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise CrawlerError(f"Cannot read keyword rules {path}: {exc}.") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CrawlerError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}.") from exc


def _term_pattern(terms: list[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    folded = sorted({strip_diacritics(t).lower() for t in terms}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in folded) + r")(?!\w)")


@dataclass
class RelevanceFilter:
    """Flags articles about the province; returns matched terms and places."""

    finder: PlaceFinder
    rules: KeywordRules = field(default_factory=KeywordRules)

    def __post_init__(self) -> None:
        self._include = _term_pattern(self.rules.include)
        self._exclude = _term_pattern(self.rules.exclude)

    @classmethod
    def from_paths(
        cls, gazetteer: str | Path, keywords: str | Path | None = None
    ) -> RelevanceFilter:
        return cls(
            PlaceFinder(load_gazetteer(Path(gazetteer)), use_ner=False),
            load_keyword_rules(keywords),
        )

    def assess(
        self, text: str, published: str | None = None
    ) -> tuple[bool, list[str], list[dict[str, Any]]]:
        """(relevant, matched terms, places)."""
        folded = strip_diacritics(text).lower()
        if self._exclude and self._exclude.search(folded):
            return False, [], []
        places = [
            p
            for p in self.finder.find(text, published)
            if (p.get("confidence") or 0) >= self.rules.min_place_confidence
        ]
        terms = [p["mention"] for p in places]
        if self._include:
            terms += [m.group(1) for m in self._include.finditer(folded)]
        terms = list(dict.fromkeys(terms))
        return bool(terms), terms, places
