"""The plan lexicon: ``plan_lexicon.json`` (the words, as data) indexed for the grammar.

Every phrase in the JSON gets one or more *roles* (``target:teeth``, ``verb:treat``,
``degree``, ``negation``...). The grammar (``plan_grammar.py``) matches the longest phrase at
each position and reads its roles; this module only loads, normalises and indexes, and
corrects typos against the lexicon's own words with rapidfuzz.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

LEXICON_FILE = Path(__file__).with_name("plan_lexicon.json")
MAX_PHRASE = 6  # tokens in the longest phrase matched
# Typo tolerance (rapidfuzz ratio, 0..100): short words need a closer match, and words of
# one or two letters are never corrected (too many near neighbours).
FUZZY_CUTOFF = 80
FUZZY_CUTOFF_SHORT = 85
FUZZY_MIN_LENGTH = 3

_TOKEN = re.compile(r"\d+(?:\.\d+)?\s*(?:x|%|px|k)\b|x\d+(?:\.\d+)?\b|\d+(?:\.\d+)?|[a-zà-ÿ]+(?:'[a-z]+)?")
_CONTRACTIONS = {
    "don't": "do not", "dont": "do not", "doesn't": "does not", "doesnt": "does not", "didn't": "did not",
    "won't": "will not", "wont": "will not", "can't": "can not", "cant": "can not", "cannot": "can not",
    "shouldn't": "should not", "isn't": "is not", "aren't": "are not", "wouldn't": "would not",
    "let's": "lets", "i'm": "i am", "it's": "it is", "that's": "that is", "they're": "they are",
}


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, hyphens and slashes as spaces."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return re.sub(r"[-_/]+", " ", text)


def tokenise(text: str) -> list[str]:
    """Words, numbers (``0.3``, ``40%``, ``2x``, ``x2``, ``4000px``, ``4k``) and clause marks
    (``,`` ``;`` ``.``...) as separate tokens; contractions spelled out."""
    tokens: list[str] = []
    for piece in re.finditer(r"\d+\.\d+\w*|[^\s,;.!?:()]+|[,;.!?:()]", normalise(text)):
        chunk = piece.group(0)
        if chunk in ",;.!?:()":
            tokens.append(",")
            continue
        for match in _TOKEN.finditer(chunk):
            word = match.group(0).replace(" ", "")
            tokens.extend(_CONTRACTIONS.get(word, word).split())
    return tokens


@dataclass
class Lexicon:
    """The JSON plus the phrase index built from it."""

    data: dict[str, Any]
    roles: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    vocabulary: list[str] = field(default_factory=list)
    spellings: dict[str, str] = field(default_factory=dict)

    def add(self, phrase: str, role: str) -> None:
        key = self.key(phrase)
        if key:
            self.roles.setdefault(key, set()).add(role)

    def key(self, phrase: str) -> tuple[str, ...]:
        return tuple(self.spellings.get(t, t) for t in tokenise(phrase))

    def phrase_roles(self, tokens: list[str] | tuple[str, ...]) -> set[str]:
        return self.roles.get(tuple(tokens), set())

    def words(self, section: str) -> set[tuple[str, ...]]:
        """The phrases of a refusal word list, as token tuples."""
        return {self.key(p) for p in self.data["refusal_words"][section]}

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.data["nodes"]

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        return self.data["targets"]

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        return self.data["presets"]


def _index(data: dict[str, Any]) -> Lexicon:
    lex = Lexicon(data=data, spellings=dict(data.get("spellings", {})))
    for name, target in data["targets"].items():
        for phrase in target["words"]:
            lex.add(phrase, f"target:{name}")
    for kind, phrases in data["verbs"].items():
        for phrase in phrases:
            lex.add(phrase, f"verb:{kind}")
    for phrase in data["comparatives"]:
        lex.add(phrase, "comparative")
    for phrase in data["degrees"]:
        lex.add(phrase, "degree")
    for phrase in data["caps"]["natural"]:
        lex.add(phrase, "cap")
    simple = ("excess", "style_fake", "style_glam", "negations", "unchanged", "off_verbs", "scope_only", "scope_except",
              "separators", "filler")
    for section in simple:
        for phrase in data[section]:
            lex.add(phrase, section)
    for command, phrases in data["commands"].items():
        for phrase in phrases:
            lex.add(phrase, f"command:{command}")
    for name, preset in data["presets"].items():
        for phrase in preset["words"]:
            lex.add(phrase, f"preset:{name}")
    for section, phrases in data["refusal_words"].items():
        for phrase in phrases:
            lex.add(phrase, f"refuse:{section}")
    for phrase in data["numbers"]:
        lex.add(phrase, "factor")
    for phrase in data["long_edges"]:
        lex.add(phrase, "long_edge")
    lex.vocabulary = sorted({word for key in lex.roles for word in key if word.isalpha() and len(word) >= FUZZY_MIN_LENGTH})
    return lex


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    with open(LEXICON_FILE, encoding="utf-8") as handle:
        return _index(json.load(handle))


def correct(word: str, lex: Lexicon) -> str | None:
    """The lexicon word ``word`` is most likely a typo of, or None. Exact words, numbers and
    very short words are never corrected."""
    if not word.isalpha() or len(word) < FUZZY_MIN_LENGTH or (word,) in lex.roles:
        return None
    from rapidfuzz import fuzz, process

    cutoff = FUZZY_CUTOFF_SHORT if len(word) <= 4 else FUZZY_CUTOFF
    # Compare with words of a similar length only: a short word is not a typo of a long one.
    choices = [w for w in lex.vocabulary if abs(len(w) - len(word)) <= max(1, len(word) // 4)]
    found = process.extractOne(word, choices, scorer=fuzz.ratio, score_cutoff=cutoff)
    return found[0] if found else None
