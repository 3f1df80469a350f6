"""Words -> intents: the small grammar behind RetouchPlan (the words themselves are data in
``plan_lexicon.json``).

1. Tokens are matched to the longest lexicon phrase at each position (typos corrected with
   rapidfuzz first); anything left is *not understood* and reported, never dropped.
2. Separators (``,`` ``and`` ``but`` ``then``...) split the prompt into clauses. A clause with
   targets but no verb, degree, negation or scope of its own borrows them from the clause
   before ("brighten the eyes and teeth", "don't touch the eyes or the teeth"); a clause with
   only a degree ("..., a little") modifies the clause before.
3. Each clause becomes intents: refusals first (reshape, recolour, age: the clause does
   nothing else), then scope ("only", "everything but"), negation ("don't touch", "no"),
   protection ("keep the freckles"), relative changes ("less", "whiter"), and plain requests
   with an optional degree ("slightly", "a lot").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .plan_lexicon import Lexicon, correct, lexicon, tokenise

NUMBER = re.compile(r"^(x)?(\d+(?:\.\d+)?)(x|%|px|k)?$")
STRONG_DEGREE = 0.65  # "not too strong", "no heavy smoothing": a cap, not an off switch
REMOVE_AMOUNT = 0.8  # "remove the dark circles" with no degree word
GLAM_AMOUNT = 0.9  # "airbrushed", "flawless": strong, pores still kept by the node


@dataclass
class Span:
    text: str  # the words as the user wrote them (after normalising)
    key: tuple[str, ...]  # the lexicon phrase they matched
    roles: set[str]
    corrected: str | None = None  # the lexicon word a typo was read as

    def has(self, prefix: str) -> bool:
        return any(role == prefix or role.startswith(prefix + ":") for role in self.roles)

    def values(self, prefix: str) -> list[str]:
        return sorted(role.split(":", 1)[1] for role in self.roles if role.startswith(prefix + ":"))


@dataclass
class Intent:
    """One thing a clause asks for. ``kind``: set, enable, shift, scale, value, off, protect,
    cap, only, except, preset, factor, long_edge, glam, refuse, reassure, undo, reset."""

    kind: str
    target: str | None = None
    amount: float | None = None  # set: amount 0..1; shift: step in amount units; cap: level
    words: str = ""
    message: str = ""


@dataclass
class Reading:
    """What the grammar made of a prompt."""

    intents: list[Intent] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    corrections: list[tuple[str, str]] = field(default_factory=list)


# ------------------------------------------------------------------ matching


def match(tokens: list[str], lex: Lexicon) -> tuple[list[Span], list[tuple[str, str]]]:
    """Longest-phrase matching; returns spans and the (typo, correction) pairs used."""
    words = [lex.spellings.get(t, t) for t in tokens]
    fixed = list(words)
    corrections: list[tuple[str, str]] = []
    for i, word in enumerate(words):
        if word != "," and not NUMBER.match(word) and (word,) not in lex.roles:
            better = correct(word, lex)
            if better:
                fixed[i] = better
    spans: list[Span] = []
    i = 0
    while i < len(fixed):
        for length in range(min(6, len(fixed) - i), 0, -1):
            key = tuple(fixed[i : i + length])
            roles = lex.phrase_roles(key)
            if roles:
                typed = " ".join(words[i : i + length])
                changed = " ".join(key) if key != tuple(words[i : i + length]) else None
                if changed:
                    corrections.append((typed, changed))
                spans.append(Span(typed, key, set(roles), changed))
                i += length
                break
        else:
            word = fixed[i]
            roles = {"separator"} if word == "," else {"number"} if NUMBER.match(word) else {"unknown"}
            spans.append(Span(words[i], (word,), roles))
            i += 1
    return spans, corrections


def _is_separator(span: Span) -> bool:
    meaningful = {r for r in span.roles if not r.startswith(("filler", "separators", "separator"))}
    return ("separator" in span.roles or "separators" in span.roles) and not meaningful


def clauses(spans: list[Span]) -> list[list[Span]]:
    out: list[list[Span]] = [[]]
    for span in spans:
        if _is_separator(span):
            if out[-1]:
                out.append([])
        else:
            out[-1].append(span)
    return [c for c in out if c]


# ------------------------------------------------------------------ clause reading


@dataclass
class Clause:
    spans: list[Span]
    targets: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=list)
    verb_targets: list[str] = field(default_factory=list)
    comparatives: list[tuple[int, str | None]] = field(default_factory=list)
    degree: float | None = None
    step_scale: float = 1.0
    negated: bool = False
    excess: bool = False
    cap: float | None = None
    cap_texture: bool = False
    fake: bool = False
    glam: bool = False
    unchanged: bool = False
    off_verb: bool = False
    scope: str | None = None
    numbers: list[str] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)
    long_edges: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.spans)

    @property
    def own_grammar(self) -> bool:
        return bool(self.verbs or self.comparatives or self.degree is not None or self.negated or self.scope
                    or self.cap is not None or self.excess or self.unchanged or self.fake or self.glam)


def read_clause(spans: list[Span], lex: Lexicon) -> Clause:
    data = lex.data
    clause = Clause(spans)
    step = data["step"]
    small = {lex.key(p) for p in step["small_words"]}
    large = {lex.key(p) for p in step["large_words"]}
    for span in spans:
        clause.targets += [t for t in span.values("target") if t not in clause.targets]
        for kind in span.values("verb"):
            clause.verbs.append(kind)
        phrase = " ".join(span.key)
        if span.has("verb") and phrase in data["verb_targets"]:
            clause.verb_targets.append(data["verb_targets"][phrase])
        if "comparative" in span.roles:
            entry = data["comparatives"][phrase]
            clause.comparatives.append((entry["step"], entry["target"]))
        if "degree" in span.roles:
            clause.degree = data["degrees"][phrase]
        if span.key in small:
            clause.step_scale = step["small"] / step["base"]
        elif span.key in large:
            clause.step_scale = step["large"] / step["base"]
        if "negations" in span.roles:
            clause.negated = True
        if "excess" in span.roles:
            clause.excess = True
        if "cap" in span.roles:
            clause.cap = data["cap_degrees"].get(phrase, 0.5)
            clause.cap_texture = clause.cap_texture or phrase in data["cap_protects_texture"]
        clause.fake = clause.fake or "style_fake" in span.roles
        clause.glam = clause.glam or "style_glam" in span.roles
        clause.unchanged = clause.unchanged or "unchanged" in span.roles
        clause.off_verb = clause.off_verb or "off_verbs" in span.roles
        if "scope_only" in span.roles:
            clause.scope = "only"
        if "scope_except" in span.roles:
            clause.scope = "except"
        if "number" in span.roles:
            clause.numbers.append(span.key[0])
        if "factor" in span.roles:
            clause.factors.append(float(data["numbers"][phrase]))
        if "long_edge" in span.roles:
            clause.long_edges.append(int(data["long_edges"][phrase]))
    return clause


def _inherit(clause: Clause, previous: Clause | None) -> None:
    """'brighten the eyes and teeth': the second clause borrows the first one's grammar."""
    if previous is None or not clause.targets or clause.own_grammar:
        return
    for name in ("verbs", "comparatives", "degree", "step_scale", "negated", "excess", "scope", "unchanged", "off_verb"):
        setattr(clause, name, getattr(previous, name))


def _refusals(clause: Clause, lex: Lexicon) -> list[Intent]:
    present = {span.key for span in clause.spans}
    intents: list[Intent] = []
    seen: set[str] = set()
    remove_verbs = {lex.key(p) for p in lex.data["verbs"]["remove"] + ["fix", "clean up", "tame", "reduce", "get rid of"]}
    for rule in lex.data["refusal_rules"]:
        groups = [remove_verbs if name == "@remove" else lex.words(name) for name in rule["all"]]
        if not all(present & group for group in groups):
            continue
        if rule.get("unless_any_target") and clause.targets:
            continue
        if set(rule.get("unless_targets", ())) & set(clause.targets):
            continue
        category = rule["category"]
        if category in seen:
            continue
        seen.add(category)
        if clause.negated or "protect" in clause.verbs:
            what = lex.data["reassurances"][category]
            intents.append(Intent("reassure", words=clause.text, message=lex.data["reassurance"].format(what=what)))
        else:
            intents.append(Intent("refuse", words=clause.text, message=lex.data["refusals"][category]))
    return intents


def _resolve_targets(clause: Clause, lex: Lexicon) -> list[str]:
    targets = list(clause.targets)
    for first, second, result in lex.data["combos"]:
        if first in targets and second in targets:
            targets = [t for t in targets if t not in (first, second)] + [result]
    if not targets:
        targets = list(dict.fromkeys(clause.verb_targets[:1] + [t for _, t in clause.comparatives if t][:1]))[:1]
    if len(targets) > 1 and "all" in targets:
        targets.remove("all")
    for verb in (" ".join(s.key) for s in clause.spans if s.has("verb")):
        implied = lex.data["verbs_imply"].get(verb)  # "soften skin distractions": the skin is softened too
        if implied and implied not in targets and any(lex.targets[t]["node"] == lex.targets[implied]["node"] for t in targets):
            targets.insert(0, implied)
            return targets
    if "protect" in clause.verbs:
        return targets  # "texture-preserving smoothing": both are meant
    # "skin redness", "eye whites": the general word qualifies a more specific one of its node.
    specific_nodes = {lex.targets[t]["node"] for t in targets if not lex.targets[t].get("general")}
    return [t for t in targets if not (lex.targets[t].get("general") and lex.targets[t]["node"] in specific_nodes)]


def _numbers(clause: Clause, targets: list[str], words: str) -> list[Intent]:
    intents: list[Intent] = []
    relative = [s for s, _ in clause.comparatives] or ([-1] if "decrease" in clause.verbs else [1] if "increase" in clause.verbs else [])
    for text in clause.numbers:
        prefix, number, unit = NUMBER.match(text).groups()
        value = float(number)
        if unit == "x" or prefix:
            intents.append(Intent("factor", "upscale", value, words))
        elif unit == "px" or (unit is None and value >= 64 and "upscale" in targets):
            intents.append(Intent("long_edge", "upscale", value, words))
        elif unit == "k":
            intents.append(Intent("long_edge", "upscale", value * 1000, words))
        elif targets:
            fraction = value / 100.0 if unit == "%" or value > 1 else value
            for target in targets:
                if relative:
                    intents.append(Intent("scale", target, 1.0 + relative[0] * fraction, words))
                else:
                    intents.append(Intent("value", target, min(max(fraction, 0.0), 1.0), words))
    return intents


def interpret(clause: Clause, lex: Lexicon) -> list[Intent]:
    words = clause.text
    intents = [Intent(f"command_{c}", words=words) for s in clause.spans for c in s.values("command")]
    intents += [Intent("preset", p, words=words) for s in clause.spans for p in s.values("preset")]
    refusals = _refusals(clause, lex)
    if any(i.kind == "refuse" for i in refusals):
        return intents + refusals
    intents += refusals
    targets = _resolve_targets(clause, lex)
    intents += [Intent("factor", "upscale", f, words) for f in clause.factors]
    intents += [Intent("long_edge", "upscale", e, words) for e in clause.long_edges]
    intents += _numbers(clause, targets, words)
    if any(i.kind in ("factor", "long_edge") for i in intents) and "upscale" not in targets:
        intents.append(Intent("enable", "upscale", words=words))
    if targets == ["all"] and clause.cap is not None and not clause.negated:  # "natural retouch"
        return intents + [Intent("enable", "all", words=words)] + _global(clause, words)
    if not targets:
        if any(i.kind == "reassure" for i in intents):
            return intents  # "don't slim my face": nothing else to do
        return intents + _global(clause, words)
    if clause.scope:
        intents.append(Intent(clause.scope, ",".join(targets), words=words))
        if clause.scope == "except":
            return intents
    for target in targets:
        intents += _for_target(clause, target, lex, words)
    if clause.cap is not None and clause.degree is None and not clause.negated:
        intents += [Intent("set", t, clause.cap, words) for t in targets if lex.targets[t]["node"] != "Upscale"]
    return intents


def _global(clause: Clause, words: str) -> list[Intent]:
    """A clause that names no target: caps ("keep it natural"), style ("no plastic look"),
    or a change to everything ("a little less this time")."""
    intents: list[Intent] = []
    if clause.cap is not None or clause.fake or (clause.negated and (clause.excess or (clause.degree or 0) >= STRONG_DEGREE)):
        intents.append(Intent("cap", None, clause.cap if clause.cap is not None else 0.5, words))
        if clause.cap_texture or clause.fake:
            intents.append(Intent("protect", "texture", words=words))
        return intents
    if clause.glam:
        if clause.negated:
            return [Intent("cap", None, 0.5, words), Intent("protect", "texture", words=words)]
        return [Intent("glam", "skin", GLAM_AMOUNT, words)]
    steps = [s for s, _ in clause.comparatives]
    if "decrease" in clause.verbs or (clause.excess and not clause.negated):
        steps = steps or [-1]
    if "increase" in clause.verbs:
        steps = steps or [1]
    if steps:
        return [Intent("shift", "all", steps[0] * clause.step_scale, words)]
    if clause.negated and (clause.off_verb or all(s.roles <= {"negations", "filler"} for s in clause.spans)):
        return [Intent("off", "all", words=words)]  # "don't do anything", "nothing"
    if clause.degree is not None:
        return [Intent("set", "all", clause.degree, words)]
    return intents


def _for_target(clause: Clause, target: str, lex: Lexicon, words: str) -> list[Intent]:
    entry = lex.targets[target]
    problem = entry.get("polarity") == "problem"
    verbs = clause.verbs
    if clause.negated:
        if clause.excess or (clause.degree or 0) >= STRONG_DEGREE:
            return [Intent("enable", target, words=words), Intent("cap", target, 0.5, words)]
        if "protect" in verbs and entry.get("protect"):
            return [Intent("off", target, words=words)]
        return [Intent("off", target, words=words)]
    if clause.unchanged and ("protect" in verbs or clause.off_verb or not verbs):
        return [Intent("off", target, words=words)]
    if "protect" in verbs:
        if entry.get("protect"):
            return [Intent("protect", target, words=words)]
        if not any(lex.targets[t].get("protect") for t in clause.targets):
            return [Intent("cap", target, 0.5, words)]  # "keep the eyes natural"
        verbs = [v for v in verbs if v != "protect"]  # "texture-preserving smoothing": smoothing is asked for
    if clause.glam and target in ("skin", "all"):
        return [Intent("glam", target, GLAM_AMOUNT, words)]
    steps = []
    for sign, implied in clause.comparatives:
        generic = implied is None or implied == "all"
        steps.append(-sign if generic and problem else sign)
    if clause.excess:
        return [Intent("set" if problem else "shift", target, (clause.degree or 0.5) if problem else -1.0, words)]
    if "remove" in verbs:
        if entry.get("remove_refusal"):
            return [Intent("refuse", target, words=words, message=entry["remove_refusal"])]
        if not problem:
            return [Intent("off", target, words=words)]
        return [Intent("set", target, clause.degree if clause.degree is not None else REMOVE_AMOUNT, words)]
    if "decrease" in verbs and not steps:
        steps = [1 if problem else -1]
        if problem:
            return [Intent("set", target, clause.degree, words) if clause.degree is not None else Intent("enable", target, words=words)]
    if "increase" in verbs and not steps:
        steps = [-1 if problem else 1]
    if "strengthen" in verbs and problem and not steps:
        steps = [-1]
    if steps:
        return [Intent("shift", target, steps[0] * clause.step_scale, words)]
    if clause.degree is not None:
        return [Intent("set", target, clause.degree, words)]
    return [Intent("enable", target, words=words)]


def read(prompt: str) -> Reading:
    """Parse a prompt into intents (deterministic, offline)."""
    lex = lexicon()
    tokens = tokenise(prompt)
    spans, corrections = match(tokens, lex)
    reading = Reading(corrections=corrections)
    reading.not_understood = [s.text for s in spans if s.roles == {"unknown"}]
    refusal_words = [s for s in spans if s.roles and all(r.startswith("refuse:") for r in s.roles)]
    previous: Clause | None = None
    for group in clauses(spans):
        clause = read_clause(group, lex)
        meaningful = clause.targets or clause.verbs or clause.comparatives or clause.cap is not None or clause.numbers
        if previous is not None and not meaningful and clause.degree is not None and not clause.negated:
            # "..., a little": a bare degree modifies the clause before it.
            previous.degree, previous.step_scale = clause.degree, clause.step_scale
            reading.intents = [i for i in reading.intents if i.words != previous.text]
            previous.spans = previous.spans + group
            reading.intents += interpret(previous, lex)
            continue
        _inherit(clause, previous)
        intents = interpret(clause, lex)
        reading.intents += intents
        if not any(i.kind in ("refuse", "reassure") for i in intents):
            # "make it purple": a word known only from a refusal rule that did not apply
            reading.not_understood += [s.text for s in group if s in refusal_words]
        previous = clause
    return reading
