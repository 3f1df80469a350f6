"""RetouchPlan and PortraitPolish as ComfyUI calls them (tests/node_contract.py), the chain
against the same nodes wired by hand, nodes found at run time, and pass-through."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import astronaut, load_pack_as_comfyui
from node_contract import call_node, check_outputs, contract_problems

PACK = load_pack_as_comfyui()
P = "PortraitPolish"
RETOUCH_PLAN = PACK.NODE_CLASS_MAPPINGS[P + "RetouchPlan"]
POLISH = PACK.NODE_CLASS_MAPPINGS[P + "PortraitPolish"]
plan_nodes = __import__(PACK.__name__ + ".nodes.plan", fromlist=["run_chain"])


@pytest.fixture(scope="module")
def photo():
    image = astronaut()
    regions = call_node(PACK.NODE_CLASS_MAPPINGS[P + "FaceParse"], image=image, regions="face", faces="all", face_index=0,
                        grow=0.0, feather=0.0, max_faces=16, min_face_size=24, confidence=0.7, refine=True,
                        edge_softness=1.0, backend="mediapipe", bisenet_model="parsing_bisenet.pth")[1]
    return image, regions


def _defaults(cls) -> dict:
    out = {}
    for name, entry in cls.INPUT_TYPES()["required"].items():
        if isinstance(entry[0], list) or entry[0] in ("INT", "FLOAT", "BOOLEAN", "STRING"):
            out[name] = entry[1].get("default", entry[0][0] if isinstance(entry[0], list) else None)
    return out


def test_both_nodes_meet_the_contract():
    for node_id in (P + "RetouchPlan", P + "PortraitPolish"):
        cls = PACK.NODE_CLASS_MAPPINGS[node_id]
        assert contract_problems(node_id, cls, PACK.NODE_DISPLAY_NAME_MAPPINGS[node_id]) == []


def test_retouch_plan_node_makes_refines_and_undoes_a_plan():
    plan, summary = call_node(RETOUCH_PLAN, prompt="subtle teeth whitening")
    assert check_outputs(RETOUCH_PLAN, (plan, summary)) == []
    assert plan.enabled("TeethWhiten") and not plan.enabled("TextureSafeSmooth")
    assert 'subtle teeth whitening' in summary and "TeethWhiten" in summary
    refined, text = call_node(RETOUCH_PLAN, prompt="a bit whiter, and brighten the eyes", previous=plan)
    assert refined.inputs("TeethWhiten")["strength"] > plan.inputs("TeethWhiten")["strength"]
    assert refined.enabled("EyeEnhance")
    back, _ = call_node(RETOUCH_PLAN, prompt="undo", previous=refined)
    assert back.nodes == plan.nodes
    same, _ = call_node(RETOUCH_PLAN, prompt="", previous=plan)  # empty words: the plan as given
    assert same is plan
    # A plan travels as its JSON too (e.g. saved with a workflow and fed back).
    assert call_node(RETOUCH_PLAN, prompt="", previous=plan.to_json())[0].nodes == plan.nodes


def test_portrait_polish_is_the_hand_wired_chain(photo):
    """The all-in-one node gives bit-exactly what the same nodes wired by hand give."""
    image, regions = photo
    result, report, plan, summary = call_node(POLISH, image=image, prompt="whiten teeth, don't touch the eyes, subtle skin",
                                              face_regions=regions)
    assert check_outputs(POLISH, (result, report, plan, summary)) == []
    assert "ran: TextureSafeSmooth -> TeethWhiten -> IdentityGuard" in summary
    skin = PACK.NODE_CLASS_MAPPINGS[P + "TextureSafeSmooth"]
    teeth = PACK.NODE_CLASS_MAPPINGS[P + "TeethWhiten"]
    guard = PACK.NODE_CLASS_MAPPINGS[P + "IdentityGuard"]
    by_hand = call_node(skin, image=image, face_regions=regions, **{**_defaults(skin), **plan.inputs("TextureSafeSmooth")})[0]
    by_hand = call_node(teeth, image=by_hand, face_regions=regions, **{**_defaults(teeth), **plan.inputs("TeethWhiten")})[0]
    guarded = call_node(guard, original=image, retouched=by_hand, face_regions=regions,
                        **{**_defaults(guard), **plan.inputs("IdentityGuard")})
    assert torch.equal(result, guarded[0])
    assert json.loads(report)["schema"] == "portrait_polish.identity/1"
    assert json.loads(report)["action"] == "blend"  # the guard is always on, and enforces
    assert plan.inputs("TextureSafeSmooth")["strength"] < 0.5
    assert not torch.equal(result, image)


def test_portrait_polish_takes_a_plan_and_parses_faces_itself(photo):
    image, _ = photo
    plan = call_node(RETOUCH_PLAN, prompt="only the teeth")[0]
    result, _, used, summary = call_node(POLISH, image=image, prompt="", plan=plan)
    assert used is plan and "ran: FaceParse -> TeethWhiten -> IdentityGuard" in summary
    assert result.shape == image.shape and result.dtype == torch.float32
    changed = (result != image).any(-1)
    assert changed.any() and changed.float().mean() < 0.05  # only the teeth: a small part of the frame


def test_frames_without_a_face_pass_through_in_order(photo):
    image, _ = photo
    grey = torch.full_like(image, 0.5)
    batch = torch.cat([grey, image, grey])
    result, report, _, _ = call_node(POLISH, image=batch, prompt="natural retouch")
    assert result.shape == batch.shape
    assert torch.equal(result[0], grey[0]) and torch.equal(result[2], grey[0])
    assert not torch.equal(result[1], image[0])
    assert len(json.loads(report)["frames"]) == 3


def test_a_plan_that_does_not_fit_the_nodes_is_refused(photo):
    image, regions = photo
    plan = call_node(RETOUCH_PLAN, prompt="whiten teeth")[0]
    plan.nodes["TeethWhiten"]["inputs"]["strength"] = 3.0
    with pytest.raises(ValueError, match=r"TeethWhiten\.strength.*maximum"):
        call_node(POLISH, image=image, prompt="", plan=plan, face_regions=regions)


def test_nodes_are_looked_up_at_run_time(photo):
    """The plan follows the nodes registered when it runs: in an install without PortraitBokeh
    the words are recognised and reported 'not available', and the chain skips it."""
    image, regions = photo
    classes = plan_nodes.registered_classes()
    assert P + "PortraitBokeh" in classes
    without = {k: v for k, v in classes.items() if k != P + "PortraitBokeh"}
    plan = plan_nodes.make_plan("blur the background a lot, whiten teeth", plan_nodes.node_specs(without))
    assert any("background blur is not available" in line for line in plan.not_done)
    assert not plan.enabled("PortraitBokeh") and plan.enabled("TeethWhiten")
    _, _, ran = plan_nodes.run_chain(image, plan, regions, classes=without)
    assert ran == ["TeethWhiten", "IdentityGuard"]


def test_background_words_run_one_matte_and_the_background_nodes(photo):
    """'blur the background' and 'white background' switch on the real background nodes inside
    the chain, before the guard; one PortraitMatte feeds both; the result is the hand-wired graph."""
    image, regions = photo
    plan = plan_nodes.plan_from("blur the background a lot, white background, whiten teeth")
    assert plan.not_done == [] and plan.enabled("PortraitBokeh") and plan.enabled("BackgroundReplace")
    bokeh_inputs, backdrop_inputs = plan.inputs("PortraitBokeh"), plan.inputs("BackgroundReplace")
    assert 3.0 < bokeh_inputs["blur"] <= 10.0
    assert backdrop_inputs["background"] == "solid colour" and backdrop_inputs["colour"] == "white"
    result, _, ran = plan_nodes.run_chain(image, plan, regions)
    assert ran == ["TeethWhiten", "PortraitMatte", "PortraitBokeh", "BackgroundReplace", "IdentityGuard"]

    node = PACK.NODE_CLASS_MAPPINGS
    by_hand = call_node(node[P + "TeethWhiten"], image=image, face_regions=regions,
                        **{**_defaults(node[P + "TeethWhiten"]), **plan.inputs("TeethWhiten")})[0]
    alpha, foreground = call_node(node[P + "PortraitMatte"], image=by_hand, face_regions=regions, **_defaults(node[P + "PortraitMatte"]))
    wired = {"matte": alpha, "foreground": foreground, "face_regions": regions}
    by_hand = call_node(node[P + "PortraitBokeh"], image=by_hand, **wired, **{**_defaults(node[P + "PortraitBokeh"]), **bokeh_inputs})[0]
    by_hand = call_node(node[P + "BackgroundReplace"], image=by_hand, **wired,
                        **{**_defaults(node[P + "BackgroundReplace"]), **backdrop_inputs})[0]
    guarded = call_node(node[P + "IdentityGuard"], original=image, retouched=by_hand, face_regions=regions,
                        **{**_defaults(node[P + "IdentityGuard"]), **plan.inputs("IdentityGuard")})[0]
    assert torch.equal(result, guarded)
    # The backdrop is white where there is no person: the astronaut's top-left corner is background.
    assert float(alpha[0, :24, :24].max()) < 0.01
    assert torch.allclose(result[0, :24, :24], torch.ones(24, 24, 3), atol=1e-4)
