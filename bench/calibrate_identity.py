"""Calibrate IdentityGuard's thresholds: similarity of each face to edits of itself, to
another photo of the same person and to other people, per backend.

    python bench/calibrate_identity.py                    # dlib, ../shared/portraits at 1024 px
    python bench/calibrate_identity.py --backend auraface # once glintr100.onnx is installed
    python bench/calibrate_identity.py --max-side 768 --json out.json

Prints one row per condition (min / median / max over the photos) on the shared similarity
scale (dlib: 1 − distance; ArcFace: cosine). The retouch level in core/embed.py THRESHOLDS
must sit below every mild-edit row and above the heavy-edit and other-photo rows; the
same-person level below every same-person pair and above every different-person pair.
Real photos are read from ../shared/portraits (never copied into the repository).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
os.environ.setdefault("PORTRAIT_POLISH_MODELS", str(REPO_ROOT.parent / "shared" / "models"))
os.environ.setdefault("PORTRAIT_POLISH_OFFLINE", "1")

import identity_fixtures as fx  # noqa: E402

from portrait_polish.core import identity  # noqa: E402
from portrait_polish.core.embed import THRESHOLDS, FaceLocation, get_backend  # noqa: E402

PORTRAITS = REPO_ROOT.parent / "shared" / "portraits"
# Identity sets from ../shared/portraits/SOURCES.md: (file, face index left to right).
SAME_PERSON = {
    "obama": [("obama_1.jpg", 0), ("obama_2.jpg", 0)],
    "biden": [("biden_1.jpg", 0), ("biden_2.jpg", 0)],
    "jolie": [("jolie_1.jpg", 0), ("jolie_pitt_couple.jpg", 0)],
    "clooney": [("clooney_1.jpg", 0), ("clooney_2.jpg", 0)],
    "personA": [("compreface_personA_1.jpg", 0), ("compreface_personA_2.jpg", 0)],
}
OTHERS = [
    ("sundar_pichai.jpg", 0),
    ("paul_rudd_closeup.jpg", 0),
    ("compreface_glasses_beard_man.jpg", 0),
    ("fairface_latina_smile.jpg", 0),
    ("fairface_asian_woman_50s.jpg", 0),
    ("pexels_freckles_woman.jpg", 0),
    ("pexels_stubble_man.jpg", 0),
    ("u2net_older_black_woman.png", 0),
    ("u2net_black_woman_smile.jpg", 0),
    ("unsplash_black_woman.jpg", 0),
    ("human_sidelight_3q.jpg", 0),
    ("jolie_pitt_couple.jpg", 1),
]

MILD = {
    "brighten +8%": lambda rgb, k: fx.brighten(rgb, 1.08),
    "brighten +15%": lambda rgb, k: fx.brighten(rgb, 1.15),
    "darken -15%": lambda rgb, k: fx.brighten(rgb, 0.85),
    "contrast x1.15": lambda rgb, k: fx.contrast(rgb, 1.15),
    "noise sigma 0.02": lambda rgb, k: fx.noise(rgb, 0.02),
    "blur sigma 0.5% face": lambda rgb, k: fx.blur(rgb, max(0.5, 0.005 * fx.face_size(k))),
    "mild smooth": lambda rgb, k: fx.mild_smooth(rgb, k),
    "mild smooth + brighten 5%": lambda rgb, k: fx.brighten(fx.mild_smooth(rgb, k), 1.05),
}
HEAVY = {
    "blur sigma 1.5% face": lambda rgb, k: fx.blur(rgb, max(1.0, 0.015 * fx.face_size(k))),
    "warp eyes+jaw only": lambda rgb, k: fx.warp_features(rgb, k),
    "heavy (blur 4% + warp)": lambda rgb, k: fx.heavy_edit(rgb, k),
}


def load(name: str, max_side: int) -> np.ndarray:
    from PIL import Image

    with Image.open(PORTRAITS / name) as img:
        img = img.convert("RGB")
        if max(img.size) > max_side:
            ratio = max_side / max(img.size)
            img = img.resize((round(img.width * ratio), round(img.height * ratio)), Image.LANCZOS)
        return np.asarray(img, np.float32) / 255.0


def faces_of(rgb: np.ndarray, count: int) -> list[FaceLocation]:
    """The ``count`` largest faces, numbered left to right like the guard numbers them
    (clooney_1 has a partial face at the frame edge that must not be the subject)."""
    faces = sorted(identity.detect(rgb), key=lambda f: f.box[2] * f.box[3], reverse=True)[:count]
    return [faces[i] for i in identity.left_to_right(faces)]


_pack_cache: dict[str, np.ndarray | None] = {}


def pack_retouched(name: str, rgb: np.ndarray) -> np.ndarray | None:
    """The photo through FaceParse and the pack's registered retouch nodes at defaults."""
    if name not in _pack_cache:
        import torch

        from portrait_polish.core.parse import parse_faces

        image = torch.from_numpy(rgb)[None]
        out, used = fx.pack_retouch(image, parse_faces(image))
        _pack_cache[name] = out[0].numpy() if used else None
        if used:
            print(f"  pack retouch on {name}: {', '.join(used)}", file=sys.stderr)
    return _pack_cache[name]


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    v = np.asarray(values)
    return f"{v.min():6.3f} {np.median(v):6.3f} {v.max():6.3f}  n={len(v)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="dlib")
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--json", help="also write every measured value here")
    parser.add_argument("--verbose", action="store_true", help="print every measurement")
    parser.add_argument("--no-pack", action="store_true", help="skip the row made with the pack's own retouch nodes")
    args = parser.parse_args(argv)

    backend = get_backend(args.backend)
    files = sorted({f for pairs in SAME_PERSON.values() for f, _ in pairs} | {f for f, _ in OTHERS})
    images: dict[str, np.ndarray] = {}
    faces: dict[str, list[FaceLocation]] = {}
    embeddings: dict[tuple[str, int], np.ndarray] = {}
    start = time.perf_counter()
    for name in files:
        images[name] = load(name, args.max_side)
        faces[name] = faces_of(images[name], 2 if name == "jolie_pitt_couple.jpg" else 1)
        if faces[name]:
            emb = backend.embed(images[name], faces[name])
            for i in range(len(faces[name])):
                embeddings[(name, i)] = emb[i]
        else:
            print(f"warning: no face found in {name}", file=sys.stderr)

    rows: dict[str, list[float]] = {"original vs itself": []}
    subjects = [(name, i) for name in files for i in range(len(faces[name]))]
    for name, i in subjects:
        rgb, face = images[name], faces[name][i]
        scorer = identity._FrameScorer(backend, face, embeddings[(name, i)])
        rows["original vs itself"].append(scorer.score(rgb)[0])
        if not args.no_pack:
            label = "pack retouch nodes, defaults"
            retouched = pack_retouched(name, rgb)
            if retouched is not None:
                rows.setdefault(label, []).append(scorer.score(retouched)[0])
                if args.verbose:
                    print(f"  {name}#{i} {label}: {rows[label][-1]:.3f}", file=sys.stderr)
        for label, edit in {**MILD, **HEAVY}.items():
            rows.setdefault(label, []).append(scorer.score(edit(rgb, face.keypoints5))[0])
            if args.verbose:
                print(f"  {name}#{i} {label}: {rows[label][-1]:.3f}", file=sys.stderr)

    same_pairs = []
    for pairs in SAME_PERSON.values():
        for a, b in itertools.combinations(pairs, 2):
            if a in embeddings and b in embeddings:
                same_pairs.append(backend.similarity(embeddings[a], embeddings[b]))
                if args.verbose:
                    print(f"  same person {a} {b}: {same_pairs[-1]:.3f}", file=sys.stderr)
    rows["same person, another photo"] = same_pairs
    identities = [pairs[0] for pairs in SAME_PERSON.values()] + OTHERS
    rows["different people"] = [
        backend.similarity(embeddings[a], embeddings[b]) for a, b in itertools.combinations(identities, 2) if a in embeddings and b in embeddings
    ]

    levels = THRESHOLDS[args.backend]
    print(f"backend {args.backend}, photos at <= {args.max_side} px, {len(subjects)} faces, {time.perf_counter() - start:.0f} s")
    print(f"current levels: retouch {levels.retouch:.2f}, same person {levels.same_person:.2f}")
    print(f"{'condition':32} {'min':>6} {'median':>6} {'max':>6}")
    for label, values in rows.items():
        group = "mild" if label in MILD or label.startswith("pack") else "heavy" if label in HEAVY else ""
        print(f"{label:32} {summary(values)}  {group}")
    mild_min = min(min(rows[k]) for k in rows if k in MILD or k.startswith("pack"))
    heavy_max = max(max(rows[k]) for k in HEAVY)
    print(f"mild edits min {mild_min:.3f}; heavy edits max {heavy_max:.3f}; another photo max {max(same_pairs):.3f}; "
          f"same person min {min(same_pairs):.3f}; different people max {max(rows['different people']):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
