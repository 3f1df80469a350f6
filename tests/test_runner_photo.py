"""The runner keeps a photographer's file intact (issue 19), through the real bundled
workflows: the ICC profile round-trips byte for byte, EXIF copyright and date survive, a
16-bit gradient comes out with thousands of levels and no banding, pixels outside the edit
masks are bit-exact at 16 bits, a wide-gamut (Adobe RGB) photo is the same picture in a
colour-managed comparison; --format / --to-srgb / --strip-* from the CLI; the same verdict for
a truncated file in-process and in server mode; LoadPhoto/SavePhoto on the test server."""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from test_photo_io import COPYRIGHT, DATE, XMP, adobe_rgb, camera_exif
from test_runner_server import FakeComfy, _engine
from test_runner_workflows import _models_by_folder, offline_sets

from portrait_polish.core import colour
from portrait_polish.core import photo_io as pio
from portrait_polish.core import photo_meta as meta
from portrait_polish.core.masks import dilate as dilate_mask
from portrait_polish.core.regions import full_frame_mask
from portrait_polish.runner.batch import Batch
from portrait_polish.runner.cli import main
from portrait_polish.runner.engine_local import InProcessEngine
from portrait_polish.runner.errors import UNREADABLE_INPUT

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PORTRAIT_POLISH_MODELS", str(_models_by_folder(tmp_path_factory)))
    eng = InProcessEngine()
    yield eng
    eng.close()
    mp.undo()


@pytest.fixture(scope="module")
def portrait16(tmp_path_factory) -> Path:
    """A real portrait as a 16-bit Adobe RGB TIFF with camera EXIF (GPS too) and XMP: the 8-bit
    photo scaled to 16 bits plus fine noise, so the low byte carries real information."""
    from helpers import portrait

    rgb = portrait("biden_2.jpg", 384)[0].numpy().astype(np.float64)
    noise = np.random.default_rng(5).normal(0.0, 40.0, rgb.shape)
    data = np.clip(np.rint(rgb * 65535 + noise), 0, 65535).astype(np.uint16)
    exif = camera_exif()
    path = tmp_path_factory.mktemp("photo16") / "biden16.tif"
    info = pio.PhotoInfo(format="TIFF", bit_depth=16, icc_profile=adobe_rgb(), exif=exif.tobytes(), xmp=XMP)
    encoded, _ = pio.encode_photo(data / np.float32(65535), info, pio.parse_format("tiff16"))
    path.write_bytes(encoded)
    assert np.array_equal(tifffile.imread(path), data)
    return path


def _run(engine, workflow: str, inputs, out: Path, **kw):
    workflow_file = REPO / "workflows" / "api" / f"{workflow}.json"
    with Batch(workflow_file, out, engine=engine, progress=False, sets=offline_sets(workflow), **kw) as batch:
        batch.add(*inputs)
        return batch.run()


@pytest.fixture(scope="module")
def headshot16(engine, portrait16, tmp_path_factory):
    out = tmp_path_factory.mktemp("out16")
    summary = _run(engine, "natural_headshot", [portrait16], out)
    job = summary.jobs[0]
    assert job.status == "done", job.message
    return out, job


def test_16bit_tiff_in_16bit_tiff_out_profile_and_exif_kept(headshot16, portrait16):
    out, job = headshot16
    assert job.outputs == ["biden16_natural_headshot.tif"]  # TIFF in, TIFF out: the name scripts expect
    result = out / job.outputs[0]
    with tifffile.TiffFile(result) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16 and page.shape[-1] == 3
        assert page.tags["InterColorProfile"].value == adobe_rgb()  # byte for byte
        assert page.tags["Copyright"].value == COPYRIGHT and page.tags["ExifTag"].value["DateTimeOriginal"] == DATE
    back = pio.read_photo(result)
    assert back.info.icc_profile == pio.read_photo(portrait16).info.icc_profile
    assert meta.exif_summary(back.info.exif)["datetime"] == DATE and b"dc:rights" in back.info.xmp
    sidecar = json.loads((out / job.sidecars[0]).read_text())
    photo = sidecar["photo"]
    assert photo["format"] == "tiff16" and photo["icc_identical_to_input"] and photo["exif"] and photo["xmp"]
    assert photo["source"]["bit_depth"] == 16 and photo["source"]["exif"]["copyright"] == COPYRIGHT


def test_pixels_outside_the_edit_masks_are_bit_exact_at_16_bits(headshot16, portrait16):
    from portrait_polish.core.parse import parse_faces

    out, job = headshot16
    before = tifffile.imread(portrait16)
    after = tifffile.imread(out / job.outputs[0])
    changed = np.any(before != after, axis=-1)
    regions = parse_faces(torch.from_numpy(pio.read_photo(portrait16).pixels))
    faces = regions.images[0]
    assert faces.faces, "the test portrait must have a face"
    edits = full_frame_mask(faces, [name for face in faces.faces for name in face.masks])
    margin = max(2, round(0.02 * max(face.scale for face in faces.faces)))  # the retouch's feathered edges
    outside = ~(dilate_mask(edits, margin) > 0).numpy()
    assert changed.any() and outside.mean() > 0.5
    assert not changed[outside].any(), f"{int(changed[outside].sum())} pixels changed outside the edit masks"
    assert np.array_equal(before[outside], after[outside])  # bit-exact at the output's depth (16 bits)


def _lab(pixels16: np.ndarray, icc: bytes) -> torch.Tensor:
    """Colour-managed: the file's RGB through its own profile (LittleCMS, float) to CIELAB."""
    linear_srgb = imagecodecs.cms_profile("rgb", whitepoint=(0.3127, 0.329, 1.0),
                                          primaries=(0.64, 0.33, 1.0, 0.30, 0.60, 1.0, 0.15, 0.06, 1.0), gamma=1.0)
    rgb = np.ascontiguousarray(pixels16.reshape(-1, 1, 3) / np.float32(65535), dtype=np.float32)
    linear = imagecodecs.cms_transform(rgb, icc, linear_srgb, colorspace="rgb", outcolorspace="rgb")  # unbounded
    xyz = colour._matmul3(torch.from_numpy(linear.reshape(pixels16.shape)), colour._RGB_TO_XYZ)
    return colour.xyz_to_lab(xyz)


def test_wide_gamut_photo_is_the_same_picture_colour_managed(headshot16, portrait16):
    out, job = headshot16
    before, after = tifffile.imread(portrait16), tifffile.imread(out / job.outputs[0])
    icc_in = pio.read_photo(portrait16).info.icc_profile
    icc_out = pio.read_photo(out / job.outputs[0]).info.icc_profile
    assert icc_in == icc_out
    delta = colour.delta_e2000(_lab(before, icc_in), _lab(after, icc_out)).numpy()
    untouched = np.all(before == after, axis=-1)
    assert (delta[untouched] == 0).all()  # same numbers, same profile: the same colours exactly
    assert float(delta.mean()) < 0.5 and float(np.percentile(delta[~untouched], 95)) < 6.0  # a polish, not a new picture
    # What keeping the profile is worth: read as sRGB (the profile dropped) the photo shifts visibly.
    dropped = colour.delta_e2000(_lab(before, icc_in), _lab(after, meta.srgb_profile())).numpy()
    assert float(dropped.mean()) > 2.0


def test_to_srgb_converts_once_and_embeds_srgb(engine, portrait16, tmp_path):
    summary = _run(engine, "natural_headshot", [portrait16], tmp_path / "out", photo=_options(to_srgb=True))
    job = summary.jobs[0]
    assert job.status == "done", job.message
    result = pio.read_photo(tmp_path / "out" / job.outputs[0])
    assert result.info.icc_profile == meta.srgb_profile()
    sidecar = json.loads((tmp_path / "out" / job.sidecars[0]).read_text())
    assert sidecar["photo"]["converted"].startswith("to sRGB from") and not sidecar["photo"]["icc_identical_to_input"]
    before = tifffile.imread(portrait16)
    after = tifffile.imread(tmp_path / "out" / job.outputs[0])
    delta = colour.delta_e2000(_lab(before, adobe_rgb()), _lab(after, meta.srgb_profile())).numpy()
    in_gamut = np.all((pio.read_photo(portrait16, to_srgb=False).pixels[0] > 0.02), axis=-1)  # away from clipping
    assert float(np.median(delta[in_gamut])) < 0.5  # the same colours, now in sRGB numbers


def _options(**kw):
    from portrait_polish.runner.photo import PhotoOptions

    return PhotoOptions(**kw)


def _gradient16(path: Path) -> np.ndarray:
    x = np.linspace(0, 65535, 256)
    ramp = np.stack([np.tile(x, (48, 1)), np.tile(x[::-1], (48, 1)), np.tile(x * 0.5 + 16000, (48, 1))], -1)
    data = np.rint(ramp).astype(np.uint16)
    tifffile.imwrite(path, data, photometric="rgb", metadata=None)
    return data


def test_16bit_gradient_keeps_thousands_of_levels_without_banding(engine, tmp_path):
    gradient = _gradient16(tmp_path / "ramp.tif")
    # No face: the default workflow passes the frame through, bit-exact at 16 bits.
    summary = _run(engine, "natural_headshot", [tmp_path / "ramp.tif"], tmp_path / "plain")
    assert np.array_equal(tifffile.imread(tmp_path / "plain" / summary.jobs[0].outputs[0]), gradient)
    # Through the print workflow's Real-ESRGAN 2x in float32: new values, still a smooth ramp.
    summary = _run(engine, "polish_upscale_print", [tmp_path / "ramp.tif"], tmp_path / "print")
    job = summary.jobs[0]
    assert job.status == "done", job.message
    result = tifffile.imread(tmp_path / "print" / job.outputs[0])
    assert result.dtype == np.uint16 and result.shape == (96, 512, 3)
    levels = len(np.unique(result[..., 0]))
    assert levels > 16 * 256, levels  # an 8-bit step anywhere would leave at most 256
    row = result[48, 16:-16, 0].astype(np.int64)  # away from the frame edges
    steps = np.diff(row)
    assert (steps > 0).mean() > 0.95  # rising almost everywhere: no flat bands...
    assert np.abs(steps).max() < 8 * np.median(np.abs(steps))  # ...and no jumps between them


def test_cli_formats_strip_and_names(tmp_path, capsys):
    jpeg = tmp_path / "phone.jpg"  # small and faceless: this is about the file, not the retouch
    Image.fromarray((_gradient16(tmp_path / "ramp.tif") >> 8).astype(np.uint8)).save(
        jpeg, quality=95, exif=camera_exif(orientation=1).tobytes(), icc_profile=adobe_rgb())
    code = main(["run", "natural_headshot", str(jpeg), "-o", str(tmp_path / "out"), "--format", "jpeg:92", "--strip-gps",
                 "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["jobs"][0]["outputs"] == ["phone_natural_headshot.jpg"]
    result = pio.read_photo(tmp_path / "out" / "phone_natural_headshot.jpg")
    summary = meta.exif_summary(result.info.exif)
    assert result.info.icc_profile == adobe_rgb() and summary["copyright"] == COPYRIGHT and not summary["gps"]
    with Image.open(tmp_path / "out" / "phone_natural_headshot.jpg") as img:
        assert img.layer[0][1:3] == (1, 1) and img.layer[1][1:3] == (1, 1)  # 4:4:4 chroma
    # Default for a JPEG: PNG (the name existing scripts use), 8-bit, profile and EXIF kept.
    code = main(["run", "natural_headshot", str(jpeg), "-o", str(tmp_path / "png"), "--strip-metadata", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["jobs"][0]["outputs"] == ["phone_natural_headshot.png"]
    stripped = pio.read_photo(tmp_path / "png" / "phone_natural_headshot.png")
    assert stripped.info.exif is None and stripped.info.icc_profile == adobe_rgb()
    assert b"prompt" not in (tmp_path / "png" / "phone_natural_headshot.png").read_bytes()
    code = main(["run", "natural_headshot", str(jpeg), "-o", str(tmp_path / "bad"), "--format", "gif", "--json"])
    assert code == 2 and "--format" in json.loads(capsys.readouterr().out)["error"]


def test_a_users_tif_at_the_output_name_is_never_replaced(engine, tmp_path):
    _gradient16(tmp_path / "ramp.tif")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ramp_natural_headshot.tif").write_bytes(b"the user's own file")
    summary = _run(engine, "natural_headshot", [tmp_path / "ramp.tif"], tmp_path / "out")
    assert summary.jobs[0].status == "exists" and summary.jobs[0].reason == "output_exists"  # exit 4, not a success
    assert (tmp_path / "out" / "ramp_natural_headshot.tif").read_bytes() == b"the user's own file"


def test_save_photo_never_overwrites_and_numbers_on(engine, tmp_path):
    from portrait_polish.core.comfy import reset_io_directories, use_io_directories
    from portrait_polish.nodes.photo import SavePhoto

    (tmp_path / "o" / "sub").mkdir(parents=True)
    (tmp_path / "o" / "sub" / "shot_00001_.png").write_bytes(b"mine")
    token = use_io_directories(tmp_path / "i", tmp_path / "o", tmp_path / "t")
    try:
        image = torch.rand(2, 8, 8, 3)
        ui = SavePhoto().save(image, "sub/shot", "png16", 95, "keep")["ui"]
    finally:
        reset_io_directories(token)
    names = [entry["filename"] for entry in ui[pio.SAVED_KEY]]
    assert names == ["shot_00002_.png", "shot_00003_.png"]
    assert (tmp_path / "o" / "sub" / "shot_00001_.png").read_bytes() == b"mine"
    assert not [p for p in (tmp_path / "o" / "sub").iterdir() if p.name.startswith(".")]  # no temp file left


# ------------------------------------------------------------------ server mode


@pytest.fixture
def fake(tmp_path, engine):
    server = FakeComfy(tmp_path / "server")
    yield server
    server.close()


def _truncated_jpeg(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what an interrupted copy leaves
    return path


def test_truncated_jpeg_same_verdict_in_process_and_on_the_server(fake, engine, tmp_path):
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}, "_meta": {"title": "Save"}}}
    (tmp_path / "in").mkdir()
    broken = _truncated_jpeg(tmp_path / "in" / "cut.jpg")
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp_path / "in" / "fine.png")
    verdicts = {}
    for name, eng in (("in-process", engine), ("server", _engine(fake))):
        with Batch(graph, tmp_path / name, engine=eng, progress=False, name="t") as batch:
            batch.add(tmp_path / "in")
            summary = batch.run()
        if name == "server":
            eng.close()
        verdicts[name] = {Path(j.input).name: (j.status, j.reason, j.message) for j in summary.jobs}
        assert summary.exit_code == 1
    assert verdicts["in-process"] == verdicts["server"]
    status, reason, message = verdicts["server"]["cut.jpg"]
    assert status == "failed" and reason == UNREADABLE_INPUT and str(broken.resolve()) in message
    assert verdicts["server"]["fine.png"][0] == "done"
    uploaded = [p.name for p in fake.engine.dirs.input.rglob("*") if p.is_file()]
    assert uploaded and not any("cut" in name for name in uploaded)  # never sent to the lenient server


def test_16bit_tiff_on_the_server_equals_in_process(fake, engine, tmp_path):
    _gradient16(tmp_path / "ramp.tif")
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}, "_meta": {"title": "Save"}}}
    outputs = {}
    for name, eng in (("in-process", engine), ("server", _engine(fake))):
        with Batch(graph, tmp_path / name, engine=eng, progress=False, name="t", photo=_options(format="png16")) as batch:
            batch.add(tmp_path / "ramp.tif")
            summary = batch.run()
        if name == "server":
            eng.close()
        assert summary.jobs[0].status == "done", summary.jobs[0].message
        outputs[name] = tmp_path / name / summary.jobs[0].outputs[0]
    assert outputs["server"].name == outputs["in-process"].name == "ramp_t.png"
    for output in outputs.values():  # the same 16-bit file (the prompt text chunk names each engine's paths)
        assert pio.read_photo(output).info.bit_depth == 16
        assert np.array_equal(imagecodecs.png_decode(output.read_bytes()), tifffile.imread(tmp_path / "ramp.tif"))


def test_cli_refuses_a_photo_above_max_megapixels_and_says_how_to_go_ahead(tmp_path, capsys, monkeypatch):
    from portrait_polish.runner import cli

    monkeypatch.setenv(pio.MAX_MEGAPIXELS_ENV, "150")  # the CLI sets it for the process: put it back after
    photo = tmp_path / "wide.jpg"
    Image.fromarray(np.full((100, 300, 3), 128, np.uint8)).save(photo)
    code = cli.main(["run", "natural_headshot", str(photo), "-o", str(tmp_path / "out"), "--json", "--max-megapixels", "0.01"])
    summary = json.loads(capsys.readouterr().out)
    (job,) = summary["jobs"]
    assert code == 1 and job["status"] == "failed" and job["reason"] == "too_large"
    assert "300x100" in job["message"] and "--max-megapixels 1" in job["message"]
    assert not any((tmp_path / "out").glob("*.png"))
