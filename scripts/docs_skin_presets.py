"""Make docs/skin_presets.jpg and print the README's numbers under it.

    python scripts/docs_skin_presets.py

scikit-image's public-domain astronaut at 100 %: original | profile_photo | natural_headshot
| polished, TextureSafeSmooth alone with each preset's widgets (runner/make_workflows.py),
and the whole-skin band report of each (tests/skin_metrics.py: whole_skin_report).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
os.environ.setdefault("PORTRAIT_POLISH_MODELS", str(REPO_ROOT.parent / "shared" / "models"))
os.environ.setdefault("PORTRAIT_POLISH_OFFLINE", "1")

from helpers import astronaut  # noqa: E402
from skin_metrics import eye_distance, whole_skin, whole_skin_report  # noqa: E402

from portrait_polish.core.parse import parse_faces  # noqa: E402
from portrait_polish.core.regions import full_frame_mask  # noqa: E402
from portrait_polish.nodes.skin import TextureSafeSmooth  # noqa: E402
from portrait_polish.runner.make_workflows import PRESETS  # noqa: E402

OUT = REPO_ROOT / "docs" / "skin_presets.jpg"


def main() -> int:
    image = astronaut()
    regions = parse_faces(image)
    item = regions.images[0]
    face = max(item.faces, key=lambda f: f.scale)
    node = TextureSafeSmooth()
    defaults = {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items() if name != "image"}
    skin = full_frame_mask(item, ["skin"], faces=[item.faces.index(face)]).numpy() > 0.5
    landmarks = face.landmarks.numpy()
    region = whole_skin(landmarks, skin)
    x, y, w, h = face.box
    cx, cy, half = int(x + w / 2), int(y + h * 0.55), int(max(w, h) * 0.45)
    crops = [image[0]]
    for preset in ("profile_photo", "natural_headshot", "polished"):
        widgets = {**defaults, **PRESETS[preset].get("TextureSafeSmooth", {})}
        out = node.smooth(image=image, face_regions=regions, **widgets)["result"][0]
        report = whole_skin_report(image[0], out[0], region, eye_distance(landmarks))
        print(preset, {k: round(v, 3) for k, v in report.items()})
        crops.append(out[0])
    y0, y1, x0, x1 = max(0, cy - half), cy + half, max(0, cx - half), cx + half
    tiles = [(crop[y0:y1, x0:x1].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8) for crop in crops]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    temporary = OUT.with_suffix(".tmp.jpg")
    Image.fromarray(row).save(temporary, quality=92)
    os.replace(temporary, OUT)
    print("wrote", OUT.relative_to(REPO_ROOT), row.shape, "face width", round(float(face.scale), 1), "px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
