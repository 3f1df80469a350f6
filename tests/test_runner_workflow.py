"""Workflow files: UI->API conversion (widget order, seed control values, upload widgets,
links through Reroute, PrimitiveNode values, bypassed and muted nodes, notes, subgraphs),
malformed files, and --set / CSV value checks against declared inputs."""

from __future__ import annotations

import copy
import json

import pytest

from portrait_polish.runner.builder import NodeSpec, build
from portrait_polish.runner.errors import ParameterError, WorkflowError
from portrait_polish.runner.objectinfo import local_object_info, node_info
from portrait_polish.runner.workflow import apply_sets, load_workflow, parse_assignment, ui_to_api, validate_graph


class Source:
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "a.png"})}}


class Blur:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "radius": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.5}),
                "mode": (["soft", "hard"], {"default": "soft"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**32}),
                "passes": ("INT", {"default": 1, "min": 1, "max": 4, "forceInput": True}),
            },
            "optional": {"mask": ("MASK",), "keep_edges": ("BOOLEAN", {"default": True}), "label": ("STRING", {"default": ""})},
        }


class Out:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "x"})}}


INFO = {name: node_info(name, cls, name) for name, cls in {"Source": Source, "Blur": Blur, "Out": Out}.items()}
INFO["Counter"] = node_info("Counter", type("Counter", (), {"RETURN_TYPES": ("INT",), "FUNCTION": "f",
                                                           "INPUT_TYPES": classmethod(lambda c: {"required": {}})}), "Counter")


def _chain(**blur_values):
    nodes = [
        NodeSpec("src", "Source", values={"name": "photo.png"}),
        NodeSpec("cnt", "Counter"),
        NodeSpec("blur", "Blur", links={"image": ("src", "IMAGE"), "mask": ("src", "MASK"), "passes": ("cnt", "INT")},
                 values={"radius": 2.5, "mode": "hard", "seed": 42, "label": "x", **blur_values}, title="Soften"),
        NodeSpec("out", "Out", links={"images": ("blur", "IMAGE")}, values={"filename_prefix": "p"}),
    ]
    return build(nodes, INFO, note="a note the converter must skip")


def test_builder_ui_converts_to_builder_api():
    ui, api = _chain()
    assert ui_to_api(ui, INFO) == api
    blur = api["3"]
    assert blur["inputs"] == {"image": ["1", 0], "radius": 2.5, "mode": "hard", "seed": 42, "passes": ["2", 0],
                              "mask": ["1", 1], "keep_edges": True, "label": "x"}
    assert blur["_meta"]["title"] == "Soften" and api["4"]["_meta"]["title"] == "Out"
    # The seed's "control after generate" value sits among the widget values and is skipped.
    ui_blur = next(n for n in ui["nodes"] if n["id"] == 3)
    assert ui_blur["widgets_values"] == [2.5, "hard", 42, "fixed", True, "x"]


def test_old_style_ui_without_widget_inputs_and_missing_trailing_values():
    ui, api = _chain()
    for node in ui["nodes"]:
        node["inputs"] = [inp for inp in node["inputs"] if "widget" not in inp]
        if node["id"] == 3:
            node["widgets_values"] = node["widgets_values"][:4]  # saved before keep_edges/label existed
    converted = ui_to_api(ui, INFO)
    assert converted["3"]["inputs"]["keep_edges"] is True and converted["3"]["inputs"]["label"] == ""


def test_load_image_upload_widget_value_is_skipped():
    info = local_object_info()
    ui = {"nodes": [{"id": 5, "type": "LoadImage", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["me.png", "image"]},
                    {"id": 6, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                     "widgets_values": ["keep"]}],
          "links": [[1, 5, 0, 6, 0, "IMAGE"]]}
    assert ui_to_api(ui, info) == {
        "5": {"inputs": {"image": "me.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
        "6": {"inputs": {"images": ["5", 0], "filename_prefix": "keep"}, "class_type": "SaveImage", "_meta": {"title": "Save Image"}},
    }


def _add_node(ui, node):
    ui["nodes"].append(node)
    ui["last_node_id"] = max(n["id"] for n in ui["nodes"])


def _relink(ui, link_id, origin_id, origin_slot):
    for link in ui["links"]:
        if link[0] == link_id:
            link[1], link[2] = origin_id, origin_slot


def test_reroute_and_primitive_node():
    ui, api = _chain()
    image_link = next(link for link in ui["links"] if link[3] == 3 and link[5] == "IMAGE")
    # src -> Reroute(20) -> blur.image
    _add_node(ui, {"id": 20, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 90}],
                   "outputs": [{"name": "", "type": "IMAGE", "links": [image_link[0]]}]})
    ui["links"].append([90, 1, 0, 20, 0, "IMAGE"])
    _relink(ui, image_link[0], 20, 0)
    # PrimitiveNode(21) drives blur.radius (a widget converted to an input)
    _add_node(ui, {"id": 21, "type": "PrimitiveNode", "mode": 0, "inputs": [], "widgets_values": [7.5, "fixed"],
                   "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [91], "widget": {"name": "radius"}}]})
    ui["links"].append([91, 21, 0, 3, 1, "FLOAT"])
    blur = next(n for n in ui["nodes"] if n["id"] == 3)
    next(i for i in blur["inputs"] if i["name"] == "radius")["link"] = 91
    converted = ui_to_api(ui, INFO)
    expected = copy.deepcopy(api)
    expected["3"]["inputs"]["radius"] = 7.5
    assert converted == expected


def test_bypassed_node_passes_its_input_through_and_muted_node_is_dropped():
    ui, api = _chain()
    blur = next(n for n in ui["nodes"] if n["id"] == 3)
    blur["mode"] = 4
    converted = ui_to_api(ui, INFO)
    assert "3" not in converted
    assert converted["4"]["inputs"]["images"] == ["1", 0]  # Out now takes Source's IMAGE
    blur["mode"] = 2
    converted = ui_to_api(ui, INFO)
    assert "3" not in converted and "images" not in converted["4"]["inputs"]
    with pytest.raises(ParameterError, match="required input is missing"):
        validate_graph(converted, INFO)


def test_subgraph_gives_a_clear_error():
    ui, _ = _chain()
    ui["definitions"] = {"subgraphs": [{"id": "9f1c-sub", "nodes": []}]}
    _add_node(ui, {"id": 30, "type": "9f1c-sub", "mode": 0, "inputs": [], "outputs": []})
    with pytest.raises(WorkflowError, match="subgraph.*Unpack Subgraph"):
        ui_to_api(ui, INFO)


def test_unknown_node_type_is_named():
    ui, _ = _chain()
    ui["nodes"][0]["type"] = "SomethingElse"
    with pytest.raises(WorkflowError, match="node 1 has type 'SomethingElse'"):
        ui_to_api(ui, INFO)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"nodes": [', "not valid JSON: .* line 1 column"),
        ('{"1": {"inputs": {}}}', "not a ComfyUI workflow"),
        ("[1, 2]", "not a ComfyUI workflow"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path, text, pattern):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(WorkflowError, match=f"{path}.*{pattern}"):
        load_workflow(path, INFO)


def test_missing_file(tmp_path):
    with pytest.raises(WorkflowError, match="does not exist"):
        load_workflow(tmp_path / "nope.json", INFO)


def test_api_file_loads_as_is(tmp_path):
    _, api = _chain()
    path = tmp_path / "api.json"
    path.write_text(json.dumps(api))
    graph, ui = load_workflow(path, INFO)
    assert graph == api and ui is None


# ---------------------------------------------------------------- --set


def test_set_by_id_and_title_with_type_conversion():
    _, api = _chain()
    applied = apply_sets(api, INFO, ["Soften.radius=3.5", "3.mode=soft", "soften.keep_edges=false", "4.filename_prefix=z",
                                     "Soften.seed=7"])
    assert applied == {"3.radius": 3.5, "3.mode": "soft", "3.keep_edges": False, "4.filename_prefix": "z", "3.seed": 7}
    assert api["3"]["inputs"]["radius"] == 3.5 and isinstance(api["3"]["inputs"]["seed"], int)


@pytest.mark.parametrize(
    ("assignment", "pattern"),
    [
        ("Soften.radius=11", "above the maximum 10"),
        ("Soften.radius=-1", "below the minimum 0"),
        ("Soften.radius=lots", "not a number"),
        ("Soften.seed=1.5", "not a whole number"),
        ("Soften.mode=medium", "not allowed; expected one of 'soft', 'hard'"),
        ("Soften.keep_edges=maybe", "not a boolean"),
        ("Soften.strength=1", "has no input 'strength'; its settable inputs: radius, mode, seed, keep_edges, label"),
        ("Soften.image=1", "connected to node 1"),
        ("Nobody.radius=1", "no node 'Nobody' in the workflow; nodes: 1 \\(Source\\)"),
        ("radius=1", "expected NODE.INPUT=VALUE"),
        ("Soften.radius", "expected NODE.INPUT=VALUE"),
    ],
)
def test_set_errors_say_what_is_wrong(assignment, pattern):
    _, api = _chain()
    with pytest.raises(ParameterError, match=pattern):
        apply_sets(api, INFO, [assignment])


def test_ambiguous_title():
    _, api = _chain()
    api["4"]["_meta"]["title"] = "Soften"
    with pytest.raises(ParameterError, match="ambiguous"):
        apply_sets(api, INFO, ["Soften.radius=1"])


def test_titles_may_contain_dots():
    assert parse_assignment("My v1.2 node.radius=3") == ("My v1.2 node", "radius", "3")


def test_validate_graph_checks_values_and_link_types():
    _, api = _chain()
    api["3"]["inputs"]["radius"] = 50
    api["4"]["inputs"]["images"] = ["1", 1]  # a MASK into an IMAGE input
    with pytest.raises(ParameterError) as info:
        validate_graph(api, INFO)
    assert "above the maximum" in str(info.value) and "expects IMAGE but node 1 output 1 gives MASK" in str(info.value)
