"""Node family: plan — RetouchPlan (words -> plan) and PortraitPolish (the whole chain from a
plan or words). Thin nodes over core/plan.py; the chain calls the pack's own node classes
through their declared inputs, so it follows whatever those nodes become."""

from __future__ import annotations

import json
from typing import Any

import torch

from ..core.plan import NodeSpecs, Plan, check_plan, make_plan, ranges_from_input_types
from ..core.plan_lexicon import lexicon
from .common import FACE_REGIONS, RETOUCH_IMAGE_INPUT, category, node_id, register
from .preview import compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

# The plan's socket type. Not a bare "PLAN": another pack's PLAN must not plug in here.
PLAN_TYPE = "RETOUCH_PLAN"
BACKGROUND_STEPS = ("PortraitBokeh", "BackgroundReplace")  # the steps that take PortraitMatte's matte
UI_KEY = "portrait_polish_plan"
PROMPT_TOOLTIP = (
    "What you want, in plain words: 'soften minor skin distractions, brighten the eyes slightly, keep it "
    "realistic'; 'subtle teeth whitening'; 'LinkedIn'; 'everything but the skin'; 'a little less this time'. "
    "'natural', 'realistic', 'subtle' and 'keep it me' cap every strength at its natural level. Faces are never "
    "reshaped or recoloured. The summary output lists what each word did and any word not understood."
)


def registered_classes() -> dict[str, type]:
    """The pack's node classes as registered now (checked at run time, so nodes added later,
    e.g. a background node, are found without changing this module)."""
    from .. import NODE_CLASS_MAPPINGS as pack_mapping

    return dict(pack_mapping)


def node_specs(classes: dict[str, type] | None = None) -> NodeSpecs:
    """Plain node name -> widget input ranges, for every lexicon node that is registered."""
    classes = registered_classes() if classes is None else classes
    specs: NodeSpecs = {}
    for name in lexicon().nodes:
        cls = classes.get(node_id(name))
        if cls is not None:
            specs[name] = ranges_from_input_types(cls.INPUT_TYPES())
    return specs


def as_plan(value: Any) -> Plan:
    """A Plan from a RETOUCH_PLAN socket (a Plan, its dict or its JSON text)."""
    if isinstance(value, Plan):
        return value
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict):
        return Plan.from_dict(value)
    raise TypeError(f"expected a retouch plan (from RetouchPlan), got {type(value).__name__}")


def plan_from(prompt: str, previous: Any = None, specs: NodeSpecs | None = None) -> Plan:
    specs = node_specs() if specs is None else specs
    earlier = as_plan(previous) if previous is not None else None
    if earlier is not None and not (prompt or "").strip():
        return earlier
    return make_plan(prompt or "", specs, previous=earlier)


def _call(cls: type, sockets: dict[str, Any], by_type: dict[str, Any], values: dict[str, Any]) -> tuple[Any, ...]:
    """Call a node class as ComfyUI does: widgets from ``values`` or their declared defaults,
    sockets by name (or, for a required one, by its type)."""
    inputs: dict[str, Any] = {}
    declared = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in (declared.get(section) or {}).items():
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {})
            if name in sockets:
                if sockets[name] is not None:
                    inputs[name] = sockets[name]
            elif isinstance(kind, list) or kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                inputs[name] = values.get(name, options.get("default", kind[0] if isinstance(kind, list) else None))
            elif kind in by_type and (section == "required" or kind == FACE_REGIONS):
                inputs[name] = by_type[kind]
            elif section == "required":
                raise ValueError(f"PortraitPolish: {cls.__name__} needs a {kind} input ({name!r}) the chain cannot give")
    result = getattr(cls(), cls.FUNCTION)(**inputs)
    if isinstance(result, dict):
        result = result.get("result", ())
    return tuple(result)


def run_chain(image: torch.Tensor, plan: Plan, face_regions: Any = None,
              classes: dict[str, type] | None = None) -> tuple[torch.Tensor, str, list[str]]:
    """parse -> skin -> teeth -> eyes -> (PortraitMatte -> bokeh / backdrop) -> IdentityGuard (always) -> (upscale).
    Returns the image, the guard's JSON report and the steps that ran."""
    classes = registered_classes() if classes is None else classes
    specs = node_specs(classes)
    problems = check_plan(plan, specs)
    if problems:
        raise ValueError("PortraitPolish: the plan does not fit the nodes' inputs: " + "; ".join(problems))
    lex = lexicon()
    ran: list[str] = []
    if face_regions is None:
        parsed = _call(classes[node_id("FaceParse")], {"image": image}, {}, plan.inputs("FaceParse"))
        face_regions = parsed[1]
        ran.append("FaceParse")
    current = image
    steps = sorted((n for n, info in lex.nodes.items() if info.get("order", 99) < 6), key=lambda n: lex.nodes[n]["order"])
    steps = [n for n in steps if plan.enabled(n) and node_id(n) in classes]  # a node this install lacks is skipped
    matte: dict[str, Any] | None = None
    for name in steps:
        step_sockets = {"image": current, "face_regions": face_regions}
        if name in BACKGROUND_STEPS and node_id("PortraitMatte") in classes:
            if matte is None:
                # One matte, cut from the retouched photo (its edge colours are the retouched
                # ones), shared by every background step: blur and backdrop use the same edge.
                alpha, foreground = _call(classes[node_id("PortraitMatte")], step_sockets, {}, {})[:2]
                matte = {"matte": alpha, "foreground": foreground}
                ran.append("PortraitMatte")
            step_sockets.update(matte)
        current = _call(classes[node_id(name)], step_sockets, {"IMAGE": current}, plan.inputs(name))[0]
        ran.append(name)
    guard = _call(classes[node_id("IdentityGuard")], {"original": image, "retouched": current, "face_regions": face_regions},
                  {}, plan.inputs("IdentityGuard"))
    current, report = guard[0], guard[3]
    ran.append("IdentityGuard")
    if plan.enabled("Upscale") and node_id("Upscale") in classes:
        current = _call(classes[node_id("Upscale")], {"image": current}, {}, plan.inputs("Upscale"))[0]
        ran.append("Upscale")
    return current, report, ran


class RetouchPlan:
    """Plain words -> a retouch plan (and a readable summary of it)."""

    DESCRIPTION = (
        "Turns a description of the retouch into a plan: per node and input, the value, and the words that set "
        "it. Offline and deterministic (a lexicon and a small grammar, typo-tolerant): targets (skin, pores, tone, "
        "redness, blemishes, shine, dark circles, eyes, whites, iris, catchlight, teeth, upscale, background), "
        "degree words (a touch, slightly, subtle, more, a lot, max, less), negation and scope ('don't touch the "
        "eyes', 'only the teeth', 'everything but the skin') and presets by use (LinkedIn, dating profile, creator, "
        "print, after restoration). With a previous plan the words refine it ('a bit less smoothing, whiter "
        "teeth', 'undo'). Requests to reshape or recolour a face are refused and listed."
    )
    CATEGORY = category("Plan")
    FUNCTION = "make"
    RETURN_TYPES = (PLAN_TYPE, "STRING")
    RETURN_NAMES = ("plan", "summary")
    OUTPUT_TOOLTIPS = (
        "The plan: feed it to PortraitPolish (or to another RetouchPlan to refine it).",
        "What the plan does, value by value, with the words behind each, plus anything not understood or not done.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"prompt": ("STRING", {"default": "natural retouch", "multiline": True, "tooltip": PROMPT_TOOLTIP})},
            "optional": {
                "previous": (PLAN_TYPE, {"tooltip": "A plan to refine: relative words ('less', 'whiter') move from its values; 'undo' goes back one step."}),
            },
        }

    def make(self, prompt: str, previous: Any = None) -> dict[str, Any]:
        plan = plan_from(prompt, previous)
        summary = plan.summary()
        return {"ui": {UI_KEY: [summary]}, "result": (plan, summary)}


class PortraitPolish:
    """The whole retouch in one node: parse, skin, teeth, eyes, identity guard, from a plan or words."""

    DESCRIPTION = (
        "Runs the pack's chain as one node: FaceParse (unless FACE_REGIONS is given) -> TextureSafeSmooth -> "
        "TeethWhiten -> EyeEnhance -> (PortraitMatte -> PortraitBokeh / BackgroundReplace, when asked) -> IdentityGuard, always on -> "
        "(Upscale, when the plan asks). Each step is the pack's own node called with the plan's values, checked "
        "against that node's declared inputs. Give a plan from RetouchPlan, or words in prompt (with a plan, "
        "non-empty words refine it). Frames with no face pass through unchanged."
    )
    CATEGORY = category("Plan")
    FUNCTION = "polish"
    RETURN_TYPES = ("IMAGE", "STRING", PLAN_TYPE, "STRING")
    RETURN_NAMES = ("image", "report", "plan", "summary")
    OUTPUT_TOOLTIPS = (
        "The retouched photo (after the identity guard's correction, and upscaled if the plan says so).",
        "IdentityGuard's JSON report (schema portrait_polish.identity/1): score per face, passed, action taken.",
        "The plan that was used.",
        "The plan's summary and the steps that ran.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": RETOUCH_IMAGE_INPUT,
                "prompt": ("STRING", {"default": "", "multiline": True, "tooltip": PROMPT_TOOLTIP + " Empty: the plan as given, or the natural defaults."}),
            },
            "optional": {
                "plan": (PLAN_TYPE, {"tooltip": "A plan from RetouchPlan; when connected, non-empty prompt words refine it."}),
                "face_regions": (FACE_REGIONS, {"tooltip": "FaceParse output for this image; without it the chain parses the faces itself."}),
            },
        }

    def polish(self, image: torch.Tensor, prompt: str, plan: Any = None, face_regions: Any = None) -> dict[str, Any]:
        used = plan_from(prompt, plan)
        result, report, ran = run_chain(image, used, face_regions)
        summary = used.summary() + "\n  ran: " + " -> ".join(ran)
        ui: dict[str, Any] = {UI_KEY: [summary]}
        if result.shape[1:3] == image.shape[1:3]:
            ui.update(compare_ui(image, result))
        return {"ui": ui, "result": (result, report, used, summary)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, RetouchPlan, "RetouchPlan")
register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, PortraitPolish, "PortraitPolish")
