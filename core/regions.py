"""The FACE_REGIONS type: what FaceParse finds, once per graph, for every other node.

Layout (see DESIGN.md): per batch image an :class:`ImageFaces`; per face a :class:`Face`
with its box, landmarks and soft (0..1) region masks. The masks cover a crop around the
face (``Face.crop`` = ``(x0, y0, x1, y1)`` in image pixels) on a **working grid**: the
crop shrunk so the face is about 384 px wide (FaceParse computes them there), so a 24 MP
frame with six faces holds a few small masks, never full-size ones. Full-resolution masks
are made only when asked, at the size asked: :meth:`Face.crop_mask` (the whole crop),
:meth:`Face.window_mask` (any window of the frame, computed on that window only) and
:func:`full_frame_mask`; callers free them after use.

Left and right are the *subject's* left and right (as MediaPipe and CelebAMask-HQ name
them): the subject's left eye is on the image's right side.

Retouch ops run through :func:`core.kernel.apply_per_face`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from .masks import Box, resize, upsample_window

# Region names every backend maps onto (canonical label set).
FACE_REGION_NAMES: tuple[str, ...] = (
    "skin",
    "neck",
    "nose",
    "left_brow",
    "right_brow",
    "left_eye_white",
    "right_eye_white",
    "left_iris",
    "right_iris",
    "upper_lip",
    "lower_lip",
    "mouth_interior",
    "teeth",
    "hair",
)
# Regions that belong to the whole image, not to one face.
IMAGE_REGION_NAMES: tuple[str, ...] = ("person", "background")

# Convenient unions users pick in widgets.
REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "brows": ("left_brow", "right_brow"),
    "eye_whites": ("left_eye_white", "right_eye_white"),
    "irises": ("left_iris", "right_iris"),
    "eyes": ("left_eye_white", "right_eye_white", "left_iris", "right_iris"),
    "left_eye": ("left_eye_white", "left_iris"),
    "right_eye": ("right_eye_white", "right_iris"),
    "lips": ("upper_lip", "lower_lip"),
    "mouth": ("upper_lip", "lower_lip", "mouth_interior"),
    "face": (
        "skin",
        "nose",
        "left_brow",
        "right_brow",
        "left_eye_white",
        "right_eye_white",
        "left_iris",
        "right_iris",
        "upper_lip",
        "lower_lip",
        "mouth_interior",
    ),
}

ALL_REGION_NAMES: tuple[str, ...] = FACE_REGION_NAMES + IMAGE_REGION_NAMES + tuple(REGION_GROUPS)


def expand_region_names(names: str | Iterable[str]) -> list[str]:
    """Turn ``"skin, lips"`` or ``["eyes"]`` into canonical region names (groups expanded).

    Unknown names raise a ``ValueError`` that lists the valid ones.
    """
    if isinstance(names, str):
        names = [part.strip() for part in names.replace("+", ",").split(",")]
    out: list[str] = []
    for name in names:
        if not name:
            continue
        key = name.strip().lower().replace(" ", "_").replace("-", "_")
        if key in REGION_GROUPS:
            members = REGION_GROUPS[key]
        elif key in FACE_REGION_NAMES or key in IMAGE_REGION_NAMES:
            members = (key,)
        else:
            raise ValueError(f"unknown face region {name!r}; valid: {', '.join(ALL_REGION_NAMES)}")
        out.extend(m for m in members if m not in out)
    return out


@dataclass
class Face:
    """One detected face.

    ``box`` is ``(x, y, w, h)`` in image pixels (float); ``landmarks`` is ``[N, 2]`` image
    pixel coordinates (MediaPipe's 478 points, or fewer for other backends);
    ``keypoints5`` is ``[5, 2]``: right eye, left eye, nose tip, right mouth corner, left
    mouth corner (subject's sides, YuNet order), used for alignment by IdentityGuard.
    ``crop`` is the integer window ``(x0, y0, x1, y1)`` the masks cover; every mask in
    ``masks`` is float32 0..1 on one grid of :attr:`grid_size` that spans the crop (pixel
    centres aligned, as ``F.interpolate(..., align_corners=False)`` maps them): usually
    smaller than the crop, the crop size itself for a mask a user drew. ``scale`` is the
    face size in image pixels (inter-ocular distance × 2.5, roughly the face width) used
    to scale radii; :attr:`grid_scale` is the same on the grid.
    """

    box: tuple[float, float, float, float]
    score: float
    crop: tuple[int, int, int, int]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    landmarks: torch.Tensor | None = None
    keypoints5: torch.Tensor | None = None
    scale: float = 0.0
    info: dict[str, object] = field(default_factory=dict)

    @property
    def crop_box(self) -> Box:
        return Box(*(int(v) for v in self.crop))

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the crop window in image pixels."""
        x0, y0, x1, y1 = self.crop
        return y1 - y0, x1 - x0

    @property
    def grid_size(self) -> tuple[int, int]:
        """(height, width) of the grid the masks live on (the crop size when there are none)."""
        for mask in self.masks.values():
            return int(mask.shape[-2]), int(mask.shape[-1])
        return self.crop_size

    @property
    def grid_factor(self) -> float:
        """Grid pixels per image pixel (1 when the masks are at full resolution)."""
        return self.grid_size[1] / max(1, self.crop_size[1])

    @property
    def grid_scale(self) -> float:
        """The face size in grid pixels."""
        return float(self.scale) * self.grid_factor

    def mask(self, names: str | Iterable[str]) -> torch.Tensor:
        """Union (pixel-wise max) of the named regions, on the mask grid.

        A region this face has no mask for counts as empty.
        """
        height, width = self.grid_size
        out: torch.Tensor | None = None
        for name in expand_region_names(names):
            region = self.masks.get(name)
            if region is not None:
                region = region.to(torch.float32)
                out = region.clone() if out is None else torch.maximum(out, region.to(out.device))
        return torch.zeros(height, width, dtype=torch.float32) if out is None else out

    def mask_at(self, names: str | Iterable[str], size: tuple[int, int]) -> torch.Tensor:
        """The union of the named regions resampled to ``size`` (h, w) over the whole crop."""
        return resize(self.mask(names), size).clamp(0.0, 1.0)

    def crop_mask(self, names: str | Iterable[str]) -> torch.Tensor:
        """The union at full resolution over the crop, ``[crop h, crop w]`` (made on request)."""
        return self.mask_at(names, self.crop_size)

    def window_mask(self, names: str | Iterable[str] | torch.Tensor, window: Box) -> torch.Tensor:
        """The union (or a given grid mask) at full resolution on ``window`` (image
        coordinates), computed on that window only; zero outside the crop."""
        grid = names if isinstance(names, torch.Tensor) else self.mask(names)
        crop = self.crop_box
        out = torch.zeros(window.height, window.width, dtype=torch.float32, device=grid.device)
        inside = Box(max(window.x0, crop.x0), max(window.y0, crop.y0), min(window.x1, crop.x1), min(window.y1, crop.y1))
        if inside.is_empty():
            return out
        local = inside.shift(-crop.x0, -crop.y0)
        values = upsample_window(grid.to(torch.float32), self.crop_size, local).clamp(0.0, 1.0)
        out[inside.y0 - window.y0 : inside.y1 - window.y0, inside.x0 - window.x0 : inside.x1 - window.x0] = values
        return out

    def area_fraction(self, names: str | Iterable[str]) -> float:
        """Area of the named regions as a fraction of the face size squared (any grid)."""
        return float(self.mask(names).sum()) / max(self.grid_scale**2, 1e-6)

    def area(self) -> float:
        return float(self.box[2] * self.box[3])


@dataclass
class ImageFaces:
    """All faces of one batch image, plus its whole-image regions.

    ``person`` is a soft person/foreground mask at reduced resolution (any size; it is
    resized to the frame on use) or ``None`` when no segmenter ran.
    """

    height: int
    width: int
    faces: list[Face] = field(default_factory=list)
    person: torch.Tensor | None = None
    info: dict[str, object] = field(default_factory=dict)


@dataclass
class FaceRegions:
    """The FACE_REGIONS value: one :class:`ImageFaces` per image of the batch, in order."""

    images: list[ImageFaces]
    backend: str = "mediapipe"
    info: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def for_batch(self, batch: int, height: int, width: int) -> list[ImageFaces]:
        """Match these regions to an IMAGE batch, or explain why they don't fit.

        One parsed frame is reused for every frame of a larger batch of the same size
        (a common graph: parse one photo, retouch its variants).
        """
        if len(self.images) not in (1, batch):
            raise ValueError(
                f"FACE_REGIONS holds {len(self.images)} image(s) but the IMAGE batch has {batch}; "
                "parse the same batch you retouch"
            )
        items = self.images if len(self.images) == batch else self.images * batch
        for index, item in enumerate(items):
            if (item.height, item.width) != (height, width):
                raise ValueError(
                    f"FACE_REGIONS image {index} was parsed at {item.width}x{item.height} but the IMAGE is "
                    f"{width}x{height}; parse the image you retouch (after any resize or upscale)"
                )
        return items


def clamp_crop(x0: float, y0: float, x1: float, y1: float, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer crop window clipped to the frame (never empty)."""
    ix0 = max(0, min(width - 1, int(x0)))
    iy0 = max(0, min(height - 1, int(y0)))
    ix1 = max(ix0 + 1, min(width, int(round(x1))))
    iy1 = max(iy0 + 1, min(height, int(round(y1))))
    return ix0, iy0, ix1, iy1


def full_frame_mask(image_faces: ImageFaces, names: str | Iterable[str], faces: Sequence[int] | None = None) -> torch.Tensor:
    """Full-resolution ``[H, W]`` union of regions over the chosen faces (all by default).

    ``person``/``background`` come from the image-level person mask.
    """
    names = expand_region_names(names)
    out = torch.zeros(image_faces.height, image_faces.width, dtype=torch.float32)
    face_names = [n for n in names if n in FACE_REGION_NAMES]
    chosen = range(len(image_faces.faces)) if faces is None else faces
    if face_names:
        for index in chosen:
            face = image_faces.faces[index]
            rows, cols = face.crop_box.slices()
            out[rows, cols] = torch.maximum(out[rows, cols], face.crop_mask(face_names).to(out.device))
    if "person" in names or "background" in names:
        person = person_mask(image_faces)
        if person is not None:
            if "person" in names:
                out = torch.maximum(out, person)
            if "background" in names:
                out = torch.maximum(out, 1.0 - person)
    return out


def person_mask(image_faces: ImageFaces, window: Box | None = None) -> torch.Tensor | None:
    """The person mask resized to the frame (or to ``window`` of it), or ``None`` when none
    was computed."""
    if image_faces.person is None:
        return None
    person = image_faces.person.to(torch.float32)
    frame = (image_faces.height, image_faces.width)
    window = window or Box(0, 0, image_faces.width, image_faces.height)
    return upsample_window(person, frame, window).clamp(0.0, 1.0)


def count_faces(regions: FaceRegions) -> int:
    return sum(len(item.faces) for item in regions.images)


def regions_from_mask(mask: torch.Tensor, region: str = "skin", scale: float | None = None) -> FaceRegions:
    """Wrap a plain MASK as FACE_REGIONS: one pseudo-face per frame covering the mask's bounds.

    Lets retouch nodes take a hand-drawn MASK instead of FaceParse output. ``scale`` (the
    face size used for radii) defaults to the mask's bounding-box extent.
    """
    mask = mask if mask.ndim == 3 else mask[None]
    images: list[ImageFaces] = []
    for frame in range(mask.shape[0]):
        m = mask[frame].to(torch.float32)
        height, width = m.shape
        item = ImageFaces(height=height, width=width)
        nonzero = torch.nonzero(m > 0)
        if len(nonzero):
            y0, x0 = nonzero.min(dim=0).values.tolist()
            y1, x1 = (nonzero.max(dim=0).values + 1).tolist()
            extent = float(max(x1 - x0, y1 - y0))
            face = Face(
                box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                score=1.0,
                crop=(x0, y0, x1, y1),
                masks={region: m[y0:y1, x0:x1].clone()},
                scale=scale if scale is not None else extent,
                info={"source": "mask"},
            )
            item.faces.append(face)
        images.append(item)
    return FaceRegions(images=images, backend="mask")
