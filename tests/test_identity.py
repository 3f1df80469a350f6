"""IdentityGuard on real portraits (dlib backend): scores, verdicts, actions, edge cases."""

from __future__ import annotations

import json
from functools import lru_cache

import identity_fixtures
import numpy as np
import pytest
import torch
from helpers import load_pack_as_comfyui, parsed_portrait, portrait
from identity_fixtures import brighten, heavy_edit, mild_smooth

from portrait_polish.core import embed, identity
from portrait_polish.core.embed import THRESHOLDS, get_backend
from portrait_polish.core.identity import guard_identity

SIDE = 768
RETOUCH = THRESHOLDS["dlib"].retouch
SAME_PERSON = THRESHOLDS["dlib"].same_person


def _np(image: torch.Tensor) -> np.ndarray:
    return image[0].numpy()


def _largest_face(image: torch.Tensor) -> embed.FaceLocation:
    faces = identity.detect(_np(image))
    assert faces, "test photo must have a face"
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def _heavy(image: torch.Tensor) -> torch.Tensor:
    face = _largest_face(image)
    return torch.from_numpy(heavy_edit(_np(image), face.keypoints5))[None]


@lru_cache(maxsize=8)
def pack_retouch(name: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(original, retouched, what was used): the pack's own retouch nodes at their default
    settings, chained, for whichever of them are registered; a mild smoothing otherwise.
    Cached per photo (several tests use the same retouch): treat the result as read-only."""
    image, regions = parsed_portrait(name, SIDE)
    out, used = identity_fixtures.pack_retouch(image, regions)
    if not used:
        face = _largest_face(image)
        out = torch.from_numpy(brighten(mild_smooth(_np(image), face.keypoints5), 1.05))[None]
        used.append("mild_smooth+brighten5%")
    return image, out, used


def test_original_vs_itself_is_top_of_scale():
    image = portrait("obama_1.jpg", SIDE)
    result = guard_identity(image, image.clone(), action="blend")
    assert len(result.faces) == 1
    assert result.faces[0].score == pytest.approx(1.0, abs=1e-6)
    assert result.passed and result.similarity == pytest.approx(1.0, abs=1e-6)
    assert result.faces[0].action == "none" and result.faces[0].blend == 0.0
    assert torch.equal(result.image, image)
    assert result.threshold == RETOUCH and result.threshold_source == "auto"


@pytest.mark.parametrize("name", ["obama_1.jpg", "biden_2.jpg", "fairface_latina_smile.jpg"])
def test_mild_retouch_at_default_strength_passes(name):
    original, retouched, used = pack_retouch(name)
    assert not torch.equal(original, retouched), f"the retouch ({used}) changed nothing"
    result = guard_identity(original, retouched, action="blend")
    assert result.passed, (used, result.report())
    assert result.similarity >= RETOUCH
    # A passing retouch is passed through untouched, whatever the action.
    assert torch.equal(result.image, retouched)


def test_heavy_edit_fails_and_blend_brings_it_back_inside_the_face_only():
    image = portrait("obama_1.jpg", SIDE)
    heavy = _heavy(image)
    reported = guard_identity(image, heavy, action="report")
    face = reported.faces[0]
    assert not reported.passed and face.score < RETOUCH
    assert face.action == "report" and torch.equal(reported.image, heavy)

    fallback = guard_identity(image, heavy, action="original")
    assert torch.equal(fallback.image, image) and fallback.faces[0].action == "original"

    blended = guard_identity(image, heavy, action="blend")
    face = blended.faces[0]
    assert face.action == "blend" and 0.0 < face.blend <= 1.0
    assert face.final_score >= RETOUCH
    assert not blended.passed  # the verdict is on the retouch as given
    # Re-measuring the output independently agrees with the report.
    recheck = guard_identity(image, blended.image, action="report")
    assert recheck.passed and recheck.similarity == pytest.approx(face.final_score, abs=0.02)
    # Only pixels near the face changed; everything else is the retouch, bit-exact.
    changed = (blended.image != heavy).any(dim=-1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    x, y, w, h = reported.faces[0].box
    assert changed.any()
    assert xs.min() >= x - 0.2 * w and xs.max() <= x + 1.2 * w
    assert ys.min() >= y - 0.2 * h and ys.max() <= y + 1.2 * h
    # The search found the smallest amount: a step less would fail.
    less = identity.apply_blend(_np(heavy), _np(image), *identity.blend_region(_largest_face(image), _largest_face(heavy), None, *image.shape[1:3]), face.blend - 1 / 64)
    assert guard_identity(image, torch.from_numpy(less)[None]).faces[0].score < RETOUCH


def test_blend_uses_the_face_regions_mask():
    image, regions = parsed_portrait("biden_2.jpg", SIDE)
    heavy = _heavy(image)
    result = guard_identity(image, heavy, action="blend", regions=regions)
    face = result.faces[0]
    assert face.action == "blend" and face.final_score >= RETOUCH
    parsed = regions.images[0].faces[0]
    x0, y0, x1, y1 = parsed.crop
    changed = (result.image != heavy).any(dim=-1)[0]
    outside = changed.clone()
    outside[y0:y1, x0:x1] = False
    assert changed[y0:y1, x0:x1].any() and not outside.any()


def test_another_photo_of_the_same_person_scores_lower_than_a_retouch():
    backend = get_backend("dlib")
    for first, second in [("obama_1.jpg", "obama_2.jpg"), ("compreface_personA_1.jpg", "compreface_personA_2.jpg")]:
        a, b = portrait(first, SIDE), portrait(second, SIDE)
        face_a, face_b = _largest_face(a), _largest_face(b)
        emb_a = backend.embed(_np(a), [face_a])[0]
        emb_b = backend.embed(_np(b), [face_b])[0]
        other_photo = backend.similarity(emb_a, emb_b)
        _orig, retouched, _used = pack_retouch(first)
        retouch_score = guard_identity(a, retouched).similarity
        assert SAME_PERSON < other_photo < RETOUCH < retouch_score, (first, other_photo, retouch_score)


def test_different_people_fail():
    backend = get_backend("dlib")
    a, b = portrait("obama_1.jpg", SIDE), portrait("biden_2.jpg", SIDE)
    score = backend.similarity(backend.embed(_np(a), [_largest_face(a)])[0], backend.embed(_np(b), [_largest_face(b)])[0])
    assert score < SAME_PERSON


def _couple() -> tuple[torch.Tensor, list[embed.FaceLocation]]:
    image = portrait("jolie_pitt_couple.jpg", SIDE)
    faces = sorted(identity.detect(_np(image)), key=lambda f: f.box[0])
    assert len(faces) == 2
    return image, faces


def _swap_faces(rgb: np.ndarray, faces: list[embed.FaceLocation]) -> np.ndarray:
    """Each face's box area replaced by the other person's face, resized to fit."""
    import cv2

    out = rgb.copy()
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    for (xa, ya, wa, ha), (xb, yb, wb, hb) in [(boxes[0], boxes[1]), (boxes[1], boxes[0])]:
        out[ya : ya + ha, xa : xa + wa] = cv2.resize(rgb[yb : yb + hb, xb : xb + wb], (wa, ha), interpolation=cv2.INTER_AREA)
    return out


def test_swapped_identities_fail_face_by_face():
    image, faces = _couple()
    swapped = torch.from_numpy(_swap_faces(_np(image), faces))[None]
    result = guard_identity(image, swapped, action="report")
    assert len(result.faces) == 2
    assert all(not f.passed for f in result.faces)
    assert all(f.score < SAME_PERSON for f in result.faces if f.status == "matched")


def test_multi_face_each_face_judged_alone_and_order_does_not_matter():
    image, regions = parsed_portrait("jolie_pitt_couple.jpg", SIDE)
    _img, faces = _couple()
    right = faces[1]
    heavy = torch.from_numpy(identity.apply_blend(_np(image), heavy_edit(_np(image), right.keypoints5), *identity.blend_region(right, None, None, *image.shape[1:3]), 1.0))[None]
    result = guard_identity(image, heavy, action="blend", regions=regions)
    assert [f.face for f in result.faces] == [0, 1]
    left_report, right_report = result.faces
    assert left_report.passed and left_report.action == "none" and left_report.box[0] < right_report.box[0]
    assert not right_report.passed and right_report.action == "blend" and right_report.final_score >= RETOUCH
    # The left face's pixels were not touched by the right face's correction.
    lx, ly, lw, lh = (int(v) for v in left_report.box)
    assert torch.equal(result.image[0, ly : ly + lh, lx : lx + lw], heavy[0, ly : ly + lh, lx : lx + lw])

    # The same regions with the faces listed in the other order: the same report.
    reversed_regions = type(regions)(images=[type(regions.images[0])(**{**regions.images[0].__dict__, "faces": list(reversed(regions.images[0].faces))})], backend=regions.backend, info=regions.info)
    again = guard_identity(image, heavy, action="blend", regions=reversed_regions)
    assert [f.as_dict() for f in again.faces] == [f.as_dict() for f in result.faces]
    assert torch.equal(again.image, result.image)


def test_match_faces_ignores_list_order():
    _image, faces = _couple()
    pairs, missing, extra = identity.match_faces(faces, list(reversed(faces)))
    assert pairs == {0: 1, 1: 0} and missing == [] and extra == []


def _erase_face(rgb: np.ndarray, face: embed.FaceLocation) -> np.ndarray:
    """The face area filled with a flat, skin-free grey: no face for any detector."""
    out = rgb.copy()
    x, y, w, h = face.box
    x0, y0 = max(0, int(x - 0.3 * w)), max(0, int(y - 0.3 * h))
    out[y0 : int(y + 1.3 * h), x0 : int(x + 1.3 * w)] = 0.5
    return out


def test_missing_face_is_a_failure_and_blend_restores_it():
    image = portrait("jolie_1.jpg", SIDE)
    face = _largest_face(image)
    erased = torch.from_numpy(_erase_face(_np(image), face))[None]
    result = guard_identity(image, erased, action="report")
    assert not result.passed and result.similarity == identity.MISSING_SCORE
    assert result.faces[0].status == "missing_in_retouched"
    restored = guard_identity(image, erased, action="blend")
    assert restored.faces[0].action == "blend" and restored.faces[0].final_score >= RETOUCH


def test_face_only_in_the_retouch_is_a_failure():
    image = portrait("jolie_1.jpg", SIDE)
    erased = torch.from_numpy(_erase_face(_np(image), _largest_face(image)))[None]
    result = guard_identity(erased, image, action="blend")
    assert not result.passed
    # (The grey patch can make YuNet see a tiny false face elsewhere; that one is reported too.)
    report = next(f for f in result.faces if f.status == "extra_in_retouched")
    assert report.final_score is None and report.blend == 1.0 and report.score == identity.MISSING_SCORE
    assert report.box[2] > 150, "the extra face is the real, large one"
    x, y, w, h = report.box
    assert not [f for f in identity.detect(_np(result.image)) if identity.box_iou(f.box, (x, y, w, h)) > 0.1], "the blend puts the original (faceless) pixels back"


def test_frames_without_faces_pass_through_unchanged():
    flat = torch.full((2, 256, 256, 3), 0.4)
    result = guard_identity(flat, flat + 0.1, action="blend")
    assert result.faces == [] and result.passed and result.similarity == 1.0
    assert torch.equal(result.image, flat + 0.1)
    assert [f["faces"] for f in result.report()["frames"]] == [[], []]


def test_batch_in_batch_out_with_one_original():
    image = portrait("obama_1.jpg", 512)
    heavy = _heavy(image)
    batch = torch.cat([image, heavy, image])
    result = guard_identity(image, batch, action="blend")
    assert result.image.shape == batch.shape
    assert [f.frame for f in result.faces] == [0, 1, 2]
    assert [f.passed for f in result.faces] == [True, False, True]
    assert torch.equal(result.image[0], batch[0]) and torch.equal(result.image[2], batch[2])
    assert result.faces[1].final_score >= RETOUCH


def test_size_and_batch_mismatch_explain_themselves():
    image = portrait("obama_1.jpg", 512)
    with pytest.raises(ValueError, match="same size"):
        guard_identity(image, image[:, :-8])
    with pytest.raises(ValueError, match="batch"):
        guard_identity(torch.cat([image, image]), torch.cat([image, image, image]))
    with pytest.raises(ValueError, match="action"):
        guard_identity(image, image, action="ignore")


def test_rgba_alpha_and_grey_layout_carried_through():
    image = portrait("obama_1.jpg", 512)
    heavy = _heavy(image)
    alpha = torch.linspace(0, 1, heavy.shape[2]).expand(1, heavy.shape[1], -1)
    rgba = torch.cat([heavy, alpha[..., None]], dim=-1)
    result = guard_identity(image, rgba, action="blend")
    assert result.image.shape[-1] == 4 and torch.equal(result.image[..., 3], rgba[..., 3])
    assert result.faces[0].action == "blend"
    grey = image.mean(dim=-1, keepdim=True)
    same = guard_identity(grey, grey.clone())
    assert same.passed and same.image.shape[-1] == 1
    grey_heavy = heavy.mean(dim=-1, keepdim=True)
    fixed = guard_identity(grey, grey_heavy, action="blend")
    assert fixed.image.shape == grey_heavy.shape and fixed.faces[0].action == "blend"
    changed = fixed.image != grey_heavy
    assert changed.any() and changed.float().mean() < 0.5  # the face region only


def test_node_outputs_report_and_ui():
    pack = load_pack_as_comfyui()
    cls = pack.NODE_CLASS_MAPPINGS["PortraitPolishIdentityGuard"]
    image = portrait("obama_1.jpg", 512)
    heavy = _heavy(image)
    out = cls().guard(original=image, retouched=heavy, backend="dlib", threshold=0.0, action="blend")
    result_image, similarity, passed, report = out["result"]
    assert result_image.shape == heavy.shape and isinstance(similarity, float) and passed is False
    data = json.loads(report)
    assert data["schema"] == "portrait_polish.identity/1" and data["threshold_source"] == "auto"
    entry = out["ui"]["portrait_polish_identity"][0]
    assert set(entry) >= {"frame", "face", "score", "threshold", "passed", "action", "blend"}
    assert entry == data["frames"][0]["faces"][0]
    # An explicit threshold is used as given.
    low = cls().guard(original=image, retouched=heavy, backend="dlib", threshold=0.2, action="report")
    assert json.loads(low["result"][3])["threshold"] == 0.2 and low["result"][2] is True


def test_faces_face_parse_skipped_are_still_known_faces():
    """FaceParse set to one face (e.g. "largest") on a two-person photo: the other face is
    still the original's face, judged as such, not a new face of the retouch."""
    image, regions = parsed_portrait("jolie_pitt_couple.jpg", SIDE)
    first = regions.images[0]
    one_face = type(regions)(images=[type(first)(**{**first.__dict__, "faces": first.faces[:1]})], backend=regions.backend, info=regions.info)
    result = guard_identity(image, image.clone(), regions=one_face)
    assert [f.status for f in result.faces] == ["matched", "matched"]
    assert result.passed and result.similarity == pytest.approx(1.0, abs=1e-6)


def test_group_photo_small_faces_each_pass_a_mild_edit():
    image = portrait("group_six_t1.jpg", None)  # 1280x886, six faces of 60-90 px
    edited = torch.from_numpy(brighten(_np(image), 1.05))[None]
    result = guard_identity(image, edited)
    assert len(result.faces) == 6 and all(f.status == "matched" for f in result.faces)
    assert result.passed, [round(f.score, 3) for f in result.faces]
    centres = [f.box[0] + f.box[2] / 2 for f in result.faces]
    assert centres == sorted(centres), "faces are numbered left to right"
