"""The plan parser on a corpus of phrasings (tests/plan_corpus.py): which nodes are on, the
direction and rough size of each value, refusals, typos and words not understood; and every
plan it makes checked against the nodes' declared input ranges."""

from __future__ import annotations

import math
import operator
import re

import helpers  # noqa: F401 - test environment (offline, shared models)
import pytest
from plan_corpus import CORPUS, REFINE

from portrait_polish.core import plan as PLAN
from portrait_polish.nodes.plan import node_specs

SPECS = node_specs()
SHORT = {"skin": "TextureSafeSmooth", "teeth": "TeethWhiten", "eyes": "EyeEnhance", "upscale": "Upscale",
         "bokeh": "PortraitBokeh", "backdrop": "BackgroundReplace"}
REFUSALS = {
    "reshape": "never reshapes a face", "recolour": "never changes the colour", "age": "keeps lines and wrinkles",
    "adds": "adds nothing", "removes": "not available in this pack", "moles": "moles, birthmarks",
}
COMPARE = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "=": None, "~": None}
CHECK = re.compile(r"^(\w+)\.(\w+)(<=|>=|<|>|=|~)(.+)$")


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text.replace("_", " ")


def verify(plan, on: str, checks: str) -> None:
    """Assert a plan matches a corpus entry."""
    where = f'"{plan.prompt}"\n{plan.summary()}'
    assert PLAN.check_plan(plan, SPECS) == [], where
    if on != "*":
        wanted = {SHORT[name] for name in on.split()}
        actual = {node for node in SHORT.values() if plan.enabled(node)}
        assert actual == wanted, where
    lines = plan.not_done + plan.notes
    for check in checks.split():
        if check == "cap":
            assert plan.capped, where
        elif check == "nocap":
            assert not plan.capped, where
        elif check == "understood":
            assert plan.not_understood == [], where
        elif check.startswith("refuse:"):
            assert any(REFUSALS[check[7:]] in line for line in plan.not_done), where
        elif check.startswith("note:"):
            text = check[5:]
            # a note may hold spaces: the rest of the checks belong to it until the next key
            assert any(text.replace("_", " ") in line for line in lines), where
        elif check.startswith("unknown:"):
            assert check[8:] in plan.not_understood, where
        elif check.startswith("fix:"):
            assert any(check[4:] in note and note.startswith("read") for note in plan.notes), where
        else:
            match = CHECK.match(check)
            assert match, f"bad check {check!r}"
            short, name, op, raw = match.groups()
            value = plan.inputs(SHORT[short])[name]
            expected = _value(raw)
            if op == "=":
                ok = math.isclose(value, expected, abs_tol=1e-6) if isinstance(expected, float) else value == expected
            elif op == "~":
                ok = abs(value - expected) <= 0.051
            else:
                ok = COMPARE[op](value, expected)
            assert ok, f"{check}: got {value!r}\n{where}"


def _split_notes(checks: str) -> str:
    """'note:add 'grey background' cap' -> one note token (spaces as '_') + 'cap'."""
    out, note = [], None
    keys = ("cap", "nocap", "understood", "refuse:", "note:", "unknown:", "fix:")
    for word in checks.split():
        starts = word.startswith(keys) or CHECK.match(word)
        if word.startswith("note:"):
            if note:
                out.append(note)
            note = word
        elif note is not None and not starts:
            note += "_" + word
        else:
            if note:
                out.append(note)
                note = None
            out.append(word)
    if note:
        out.append(note)
    return " ".join(out)


def test_corpus_is_big_enough_and_has_no_duplicates():
    prompts = [p for p, _, _ in CORPUS]
    assert len(prompts) >= 150
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize(("prompt", "on", "checks"), CORPUS, ids=[p[:48] or "<empty>" for p, _, _ in CORPUS])
def test_phrasing(prompt, on, checks):
    verify(PLAN.make_plan(prompt, SPECS), on, _split_notes(checks))


@pytest.mark.parametrize(("first", "then", "on", "checks"), REFINE, ids=[f"{a} | {b}"[:60] for a, b, _, _ in REFINE])
def test_refinement(first, then, on, checks):
    previous = PLAN.make_plan(first, SPECS)
    refined = PLAN.make_plan(then, SPECS, previous=previous)
    verify(refined, on, _split_notes(checks))
    if then != "reset":
        assert refined.history[-1]["prompt"] == first


def test_every_plan_value_is_on_the_declared_range_and_step_grid():
    for prompt, _, _ in CORPUS:
        plan = PLAN.make_plan(prompt, SPECS)
        for node, entry in plan.nodes.items():
            for name, value in entry["inputs"].items():
                spec = SPECS[node][name]
                assert spec.problem(value) is None, (prompt, node, name, value)
                if spec.kind == "FLOAT" and spec.step:
                    ticks = (value - spec.minimum) / spec.step
                    assert math.isclose(ticks, round(ticks), abs_tol=1e-6), (prompt, node, name, value)


def test_parser_is_deterministic_and_plans_round_trip():
    for prompt, _, _ in CORPUS[:40]:
        first, second = PLAN.make_plan(prompt, SPECS), PLAN.make_plan(prompt, SPECS)
        assert first.as_dict() == second.as_dict()
        assert PLAN.Plan.from_dict(first.as_dict()).as_dict() == first.as_dict()


def test_every_word_of_a_prompt_is_accounted_for():
    """Words are matched, corrected or listed as not understood: never silently dropped."""
    from portrait_polish.core.plan_grammar import match
    from portrait_polish.core.plan_lexicon import lexicon, tokenise

    for prompt, _, _ in CORPUS:
        tokens = tokenise(prompt)
        spans, _ = match(tokens, lexicon())
        assert sum(len(span.key) for span in spans) == len(tokens), prompt
        plan = PLAN.make_plan(prompt, SPECS)
        unknown = [span.text for span in spans if span.roles == {"unknown"}]
        assert set(unknown) <= set(plan.not_understood)


def test_undo_goes_back_one_plan_and_reset_forgets():
    first = PLAN.make_plan("whiten teeth", SPECS)
    second = PLAN.make_plan("much whiter", SPECS, previous=first)
    assert second.inputs("TeethWhiten")["strength"] > first.inputs("TeethWhiten")["strength"]
    back = PLAN.make_plan("undo", SPECS, previous=second)
    assert back.nodes == first.nodes and back.history == []
    assert PLAN.make_plan("start over", SPECS, previous=second).nodes == PLAN.make_plan("", SPECS).nodes


def test_relative_changes_follow_the_nodes_declared_defaults():
    """The anchor of every degree is the node's declared default: change it and plans follow."""
    from dataclasses import replace

    specs = {node: dict(ranges) for node, ranges in SPECS.items()}
    specs["TextureSafeSmooth"]["strength"] = replace(specs["TextureSafeSmooth"]["strength"], default=0.7)
    assert PLAN.make_plan("smooth the skin", specs).inputs("TextureSafeSmooth")["strength"] == pytest.approx(0.7)
    assert PLAN.make_plan("keep it natural, strong smoothing", specs).inputs("TextureSafeSmooth")["strength"] == pytest.approx(0.7)
    assert PLAN.make_plan("slightly smooth the skin", specs).inputs("TextureSafeSmooth")["strength"] == pytest.approx(0.35)


def test_a_hand_edited_plan_out_of_range_is_caught():
    plan = PLAN.make_plan("whiten teeth", SPECS)
    plan.nodes["TeethWhiten"]["inputs"]["strength"] = 1.7
    plan.nodes["EyeEnhance"]["inputs"]["whites"] = "lots"
    problems = PLAN.check_plan(plan, SPECS)
    assert any("TeethWhiten.strength" in p and "maximum" in p for p in problems)
    assert any("EyeEnhance.whites" in p for p in problems)
