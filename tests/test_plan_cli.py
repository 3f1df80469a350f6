"""The command line: ``plan``, ``run --prompt`` and ``refine`` (chains: parent links, values
relative to the last run, undo, history), in-process on a small public-domain photo."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import astronaut

from portrait_polish.runner.cli import main


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("in") / "astronaut.png"
    pixels = (astronaut()[0].numpy() * 255).round().astype("uint8")
    Image.fromarray(pixels).resize((384, 384), Image.LANCZOS).save(path)
    return path


def test_plan_prints_each_value_with_its_words_and_lists_what_it_did_not_understand(capsys):
    assert main(["plan", "a bit less smoothing, whiter teath, frobnicate the eyes"]) == 0
    out = capsys.readouterr().out
    assert 'strength = 0.4  <- "a bit less smoothing"' in out
    assert 'read "teath" as "teeth"' in out
    assert 'not understood: "frobnicate"' in out
    assert main(["plan", "slim my face", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "portrait_polish.plan/1"
    assert any("never reshapes a face" in line for line in data["not_done"])


def test_plan_on_a_workflow_shows_the_sets(capsys):
    assert main(["plan", "a bit less smoothing", "--workflow", "polished"]) == 0
    out = capsys.readouterr().out
    # "a bit less" is 0.1 below the preset's strength (polished: runner/make_workflows.py).
    from portrait_polish.runner.make_workflows import PRESETS

    polished = PRESETS["polished"]["TextureSafeSmooth"]["strength"]
    assert f"as --set: 3.strength={round(polished - 0.1, 2):g}" in out


def test_run_prompt_turns_into_sets_before_the_users_own(photo, tmp_path, capsys):
    args = ["run", "natural_headshot", str(photo), "-o", str(tmp_path), "--print-prompt", "--no-progress"]
    assert main(args + ["--prompt", "a bit less smoothing, whiter teeth, don't touch the eyes"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph["3"]["inputs"]["strength"] == pytest.approx(0.4)
    assert graph["4"]["inputs"]["strength"] == pytest.approx(0.65)
    eyes = graph["5"]["inputs"]
    assert all(eyes[k] == 0 for k in ("whites", "iris_clarity", "catchlight"))
    assert graph["6"]["inputs"]["action"] == "report"  # what the words did not name is the workflow's
    assert main(args + ["--prompt", "whiter teeth", "--set", "4.strength=0.3"]) == 0
    assert json.loads(capsys.readouterr().out)["4"]["inputs"]["strength"] == pytest.approx(0.3)


def test_run_prompt_says_what_the_workflow_cannot_do(photo, tmp_path, capsys):
    args = ["run", "skin_only", str(photo), "-o", str(tmp_path), "--print-prompt", "--no-progress"]
    assert main(args + ["--prompt", "whiten the teeth, slim the face"]) == 0
    err = capsys.readouterr().err
    assert "not done: the workflow has no TeethWhiten node" in err
    assert "never reshapes a face" in err


@pytest.fixture(scope="module")
def chain(photo, tmp_path_factory):
    """natural_headshot, then two refinements, then an undo of the second."""
    out = tmp_path_factory.mktemp("out")
    assert main(["run", "natural_headshot", str(photo), "-o", str(out), "--no-progress"]) == 0
    first = out / "astronaut_natural_headshot.json"
    assert main(["refine", str(first), "--prompt", "a bit less smoothing, whiter teeth"]) == 0
    assert main(["refine", str(out / "astronaut_natural_headshot_r1.json"), "--prompt", "a bit less smoothing"]) == 0
    assert main(["refine", str(out / "astronaut_natural_headshot_r2.json"), "--undo"]) == 0
    return out


def _sidecar(folder, name):
    return json.loads((folder / name).read_text())


def test_refine_applies_changes_relative_to_the_last_values(chain):
    r1, r2 = _sidecar(chain, "astronaut_natural_headshot_r1.json"), _sidecar(chain, "astronaut_natural_headshot_r2.json")
    assert r1["workflow"]["api"]["3"]["inputs"]["strength"] == pytest.approx(0.4)
    assert r1["workflow"]["api"]["4"]["inputs"]["strength"] == pytest.approx(0.65)
    assert r2["workflow"]["api"]["3"]["inputs"]["strength"] == pytest.approx(0.3)  # 0.4 - 0.1, not 0.5 - 0.1
    assert r2["workflow"]["api"]["4"]["inputs"]["strength"] == pytest.approx(0.65)  # kept from r1
    change = r1["refine"]["changes"][0]
    assert change["input"] == "strength" and change["from"] == 0.5 and change["to"] == pytest.approx(0.4)
    assert change["words"] == ["a bit less smoothing"]


def test_refine_numbers_outputs_and_links_parents(chain):
    names = sorted(p.name for p in chain.glob("astronaut_natural_headshot*.png"))
    assert names == [f"astronaut_natural_headshot{s}.png" for s in ("", "_r1", "_r2", "_r3")]
    for step, parent in ((1, ""), (2, "_r1"), (3, "_r2")):
        info = _sidecar(chain, f"astronaut_natural_headshot_r{step}.json")["refine"]
        assert info["step"] == step and info["parent"] == f"astronaut_natural_headshot{parent}.json"
        assert info["root"] == "astronaut_natural_headshot.json"
    sidecar = _sidecar(chain, "astronaut_natural_headshot_r2.json")
    assert sidecar["workflow"]["name"] == "natural_headshot"
    assert sidecar["input_sha256"] == _sidecar(chain, "astronaut_natural_headshot.json")["input_sha256"]


def test_undo_gives_the_parents_settings_and_image(chain):
    r1, r3 = _sidecar(chain, "astronaut_natural_headshot_r1.json"), _sidecar(chain, "astronaut_natural_headshot_r3.json")
    assert r3["refine"]["undo_of"] == "astronaut_natural_headshot_r2.json"
    assert r3["workflow"]["api"] == r1["workflow"]["api"]
    data = (chain / "astronaut_natural_headshot_r3.png").read_bytes()
    assert hashlib.sha256(data).hexdigest() == r3["output_sha256"]
    # Same settings, same photo: the same pixels (the PNG's embedded prompt differs by its job id).
    from PIL import Image

    with Image.open(chain / "astronaut_natural_headshot_r1.png") as a, Image.open(chain / "astronaut_natural_headshot_r3.png") as b:
        assert a.tobytes() == b.tobytes()
    with Image.open(chain / "astronaut_natural_headshot_r2.png") as c, Image.open(chain / "astronaut_natural_headshot_r1.png") as a:
        assert c.tobytes() != a.tobytes()


def test_history_follows_the_chain(chain, capsys):
    assert main(["refine", str(chain / "astronaut_natural_headshot_r3.json"), "--history"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["r0", "r1", "r2", "r3"]
    assert '"a bit less smoothing, whiter teeth"' in lines[1] and "undo" in lines[3]


def test_refine_refuses_nothing_to_undo_a_changed_input_and_empty_words(chain, photo, tmp_path, capsys):
    first = chain / "astronaut_natural_headshot.json"
    assert main(["refine", str(first), "--undo"]) == 2
    assert "nothing to undo" in capsys.readouterr().err
    assert main(["refine", str(first), "--prompt", "purple"]) == 2
    assert "change nothing" in capsys.readouterr().err
    moved = json.loads(first.read_text())
    copy = tmp_path / "photo.png"
    copy.write_bytes(photo.read_bytes() + b"\0")
    moved["input"] = str(copy)
    fake = tmp_path / "astronaut_natural_headshot.json"
    fake.write_text(json.dumps(moved))
    assert main(["refine", str(fake), "--prompt", "whiter teeth"]) == 2
    assert "has changed since that run" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_r1.png"))  # nothing written
