"""Read and write photo files without losing what a photographer put in them.

Reading (:func:`read_photo`) gives float32 RGB in 0..1, an alpha plane when the file has one,
and a :class:`PhotoInfo` with the ICC profile (bytes, untouched), EXIF, XMP, IPTC, DPI and the
bit depth. 16-bit PNGs (imagecodecs' libpng) and TIFFs of any depth (tifffile) keep every
level; JPEG, WebP and 8-bit PNG go through Pillow, whose every mode is read by its own range
(``I;16``/``I;16B`` by 65535, ``I`` as 16-bit data, ``F`` as 0..1, ``LA`` and ``P`` with
transparency give alpha, CMYK goes to sRGB through its own profile). EXIF orientation is
applied to the pixels and the tag set to 1. Decoding is strict: a truncated or corrupt file
raises :class:`UnreadableImage`, never a half-grey picture.

Writing (:func:`encode_photo`) makes PNG (8/16-bit), TIFF (8/16-bit, deflate), JPEG (4:4:4) or
WebP bytes with that metadata: the ICC profile byte for byte, EXIF (orientation 1, no stale
thumbnail, GPS removed on request), XMP, IPTC where the format has a place for it, and returns
a record of what was kept. :func:`write_new_file` puts bytes on disk atomically and never
replaces an existing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import photo_meta as meta

TIFF_SUFFIXES = {".tif", ".tiff"}
FORMAT_CHOICES = ("auto", "png", "png16", "tiff", "tiff16", "jpeg", "webp")
METADATA_CHOICES = ("keep", "strip GPS", "strip all")
DEFAULT_JPEG_QUALITY = 95
SAVED_KEY = "portrait_polish_saved"  # SavePhoto's UI key: the files it wrote and what each kept (the runner reads it)
_STRICT_LOCK = threading.Lock()


class UnreadableImage(ValueError):
    """The file is not an image this reader can decode completely (truncated, corrupt, unknown)."""


class PhotoTooLarge(UnreadableImage):
    """The photo is above the pixel limit (:func:`max_megapixels`): refused before decoding."""


# The default workflow's peak memory per pixel of the photo, measured (README, "Memory"):
# the photo itself, one node's input and output copies, FaceParse's preview and MASK, the
# models' 8-bit copy. Used to say what a refused photo would need.
BYTES_PER_PIXEL = 36
DEFAULT_MAX_MEGAPIXELS = 150.0
MAX_MEGAPIXELS_ENV = "PORTRAIT_POLISH_MAX_MEGAPIXELS"


def max_megapixels() -> float | None:
    """The largest photo (in megapixels) the pack decodes: PORTRAIT_POLISH_MAX_MEGAPIXELS, or
    150 MP (about 5.4 GB for the default workflow); 0 or "none" lifts the limit."""
    raw = os.environ.get(MAX_MEGAPIXELS_ENV, "").strip().lower()
    if raw in ("0", "none", "off", "unlimited"):
        return None
    try:
        return float(raw) if raw else DEFAULT_MAX_MEGAPIXELS
    except ValueError:
        return DEFAULT_MAX_MEGAPIXELS


def check_size(path: Path, width: int, height: int, frames: int = 1) -> None:
    """Refuse a photo above :func:`max_megapixels` before any pixel is decoded."""
    limit = max_megapixels()
    megapixels = width * height * max(1, frames) / 1e6
    if limit is None or megapixels <= limit:
        return
    need = BYTES_PER_PIXEL * megapixels * 1e6 / 2**30
    suggest = int(megapixels + 1)
    raise PhotoTooLarge(
        f"{path.name}: {width}x{height} is {megapixels:.0f} MP, above the {limit:.0f} MP limit (the default workflow "
        f"needs about {BYTES_PER_PIXEL} bytes per pixel, {need:.1f} GB here). To go ahead, set "
        f"{MAX_MEGAPIXELS_ENV}={suggest} (CLI: --max-megapixels {suggest}), or 0 for no limit."
    )


@dataclass
class PhotoInfo:
    """What a photo file carried besides its pixels (the PHOTO_INFO the loader node outputs)."""

    source: str = ""
    format: str = ""  # "PNG", "TIFF", "JPEG", "WEBP", ...
    mode: str = ""  # how the file stored its pixels, e.g. "RGB 16-bit", "I;16", "CMYK"
    bit_depth: int = 8
    grey: bool = False
    has_alpha: bool = False
    width: int = 0
    height: int = 0
    frames: int = 1
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied (tag reset to 1)
    xmp: bytes | None = None
    iptc: bytes | None = None  # IPTC-IIM records
    dpi: tuple[float, float] | None = None
    orientation: int = 1  # the orientation the file declared (applied to the pixels)
    converted: str | None = None  # e.g. "to sRGB from Adobe RGB (1998)"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no raw bytes) for sidecars and logs."""
        return {
            "file": self.source, "format": self.format, "mode": self.mode, "bit_depth": self.bit_depth,
            "grey": self.grey, "alpha": self.has_alpha, "size": [self.width, self.height], "frames": self.frames,
            "icc_profile": meta.icc_description(self.icc_profile), "icc_sha256": _sha(self.icc_profile),
            "exif": meta.exif_summary(self.exif) or None, "xmp": self.xmp is not None, "iptc": self.iptc is not None,
            "dpi": list(self.dpi) if self.dpi else None, "orientation": self.orientation,
            "orientation_applied": meta.ORIENTATION_NAMES.get(self.orientation, "normal"),
            "converted": self.converted, "notes": list(self.notes),
        }


@dataclass
class Photo:
    pixels: np.ndarray  # (frames, H, W, 3) float32 in 0..1
    alpha: np.ndarray | None  # (frames, H, W) float32, 1 = opaque; None without alpha
    info: PhotoInfo


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data else None


@contextlib.contextmanager
def _strict_decoding():
    """Pillow's truncated-file leniency off while we decode (ComfyUI switches it on globally
    after a failed load; a photo with a grey block is not a photo)."""
    from PIL import Image, ImageFile

    with _STRICT_LOCK:
        previous, bomb = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Our own pixel limit (check_size) decides, with its override; Pillow's fixed
        # decompression-bomb limit (179 MP) would refuse a photo the user allowed.
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = previous, bomb


# ------------------------------------------------------------------ reading


def read_photo(path: str | Path, *, to_srgb: bool = False) -> Photo:
    """Decode every pixel of ``path`` (strictly) into float32 plus its metadata."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableImage(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot be read: {exc}") from None
    try:
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            frames, alphas, info = _read_tiff(path)
        elif head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 24 and head[24] == 16:
            frames, alphas, info = _read_png16(path)
        else:
            frames, alphas, info = _read_pillow(path)
    except UnreadableImage:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder's own error becomes one clear verdict
        raise UnreadableImage(f"{path}: cannot be decoded completely ({type(exc).__name__}: {exc})") from None
    info.source = path.name
    # One frame (a photo) is a view, not a copy.
    pixels = frames[0][None] if len(frames) == 1 else np.stack(frames)
    if alphas and all(a is not None for a in alphas):
        alpha = alphas[0][None] if len(alphas) == 1 else np.stack(alphas)
    else:
        alpha = None
    info.has_alpha = alpha is not None
    info.frames = pixels.shape[0]
    info.height, info.width = pixels.shape[1:3]
    if to_srgb:
        pixels = _to_srgb(pixels, info)
    return Photo(pixels=pixels, alpha=alpha, info=info)


def check_decodes(path: str | Path) -> None:
    """Raise :class:`UnreadableImage` unless ``path`` decodes completely (server mode checks
    each input with this before uploading it, so both engines give the same verdict)."""
    read_photo(path)


def _to_srgb(pixels: np.ndarray, info: PhotoInfo) -> np.ndarray:
    space = meta.icc_colour_space(info.icc_profile)
    if info.icc_profile is None:
        info.notes.append("no ICC profile: the pixels are taken as sRGB")
        return pixels
    if space != "RGB":
        info.notes.append(f"{space} profile kept: only RGB profiles are converted to sRGB")
        return pixels
    description = meta.icc_description(info.icc_profile)
    pixels = meta.convert_to_srgb(pixels, info.icc_profile)
    info.icc_profile = meta.srgb_profile()
    info.converted = f"to sRGB from {description}"
    return pixels


def _unit_float(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer or float samples -> float32 in 0..1, scaled by their own type's range (in
    place on the one float32 copy: a 96 MP photo makes one 1.15 GB buffer, not three)."""
    if array.dtype == np.bool_:
        return array.astype(np.float32), 1
    out = array.astype(np.float32)
    bits = array.dtype.itemsize * 8
    if array.dtype.kind == "u":
        out /= np.float32(2**bits - 1)
    elif array.dtype.kind == "i":
        out /= np.float32(2 ** (bits - 1) - 1)
        np.clip(out, 0.0, 1.0, out=out)
    else:
        np.nan_to_num(out, copy=False)
        np.clip(out, 0.0, 1.0, out=out)
    return out, bits


def _split(array: np.ndarray, alpha_channel: bool) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(H, W[, C]) float32 -> RGB (H, W, 3), alpha or None, grey?"""
    if array.ndim == 2:
        array = array[..., None]
    alpha = None
    if alpha_channel and array.shape[-1] in (2, 4):
        alpha, array = array[..., -1], array[..., :-1]
    grey = array.shape[-1] == 1
    if grey:
        array = np.repeat(array, 3, axis=-1)
    rgb = array[..., :3]
    return (rgb if rgb.flags.c_contiguous and rgb.dtype == np.float32 else np.ascontiguousarray(rgb, dtype=np.float32)), alpha, grey


def _orient(frames: list[np.ndarray], alphas: list[np.ndarray | None], orientation: int):
    if orientation == 1:
        return frames, alphas
    frames = [np.ascontiguousarray(meta.apply_orientation(f, orientation)) for f in frames]
    alphas = [None if a is None else np.ascontiguousarray(meta.apply_orientation(a, orientation)) for a in alphas]
    return frames, alphas


def _read_tiff(path: Path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]  # later pages of a photo TIFF are thumbnails, masks or other images
        check_size(path, int(page.imagewidth), int(page.imagelength))
        data = page.asarray()
        tags = page.tags
        axes = page.axes
        photometric = int(page.photometric)
        extrasamples = tuple(page.extrasamples or ())
        colormap = page.colormap

        def value(code: int) -> Any:
            return tags[code].value if code in tags else None

        icc, xmp, iptc = value(34675), value(700), value(33723)
        orientation = value(274) or 1
        resolution = (value(282), value(283), value(296))
    while data.ndim > 3 or (data.ndim == 3 and "S" not in axes):
        data, axes = data[0], axes[1:]
    if "S" in axes and axes.index("S") == 0 and data.ndim == 3:
        data = np.moveaxis(data, 0, -1)  # planar configuration: samples first
    info = PhotoInfo(format="TIFF", mode=f"{page_mode(photometric, data)} {data.dtype.itemsize * 8}-bit")
    if photometric == 3 and colormap is not None:  # palette: the colour map holds 16-bit RGB
        data = np.moveaxis(np.asarray(colormap)[:, data], 0, -1)
    floats, info.bit_depth = _unit_float(data)
    if photometric == 0:  # min-is-white
        floats = 1.0 - floats
    notes = []
    if photometric == 5:  # separated (CMYK): no profile conversion at this depth, a plain formula
        inks = floats[..., :4]
        floats = (1.0 - inks[..., :3]) * (1.0 - inks[..., 3:4])
        notes.append("CMYK converted to RGB without its profile")
        icc = None
    rgb, alpha, info.grey = _split(floats, alpha_channel=bool(extrasamples))
    info.icc_profile = bytes(icc) if isinstance(icc, bytes | bytearray) and icc else None
    info.xmp = bytes(xmp) if isinstance(xmp, bytes | bytearray) and xmp else (xmp.encode() if isinstance(xmp, str) and xmp else None)
    info.iptc = _tiff_bytes(iptc)
    info.exif = _tiff_exif(path)
    info.orientation = int(orientation) if int(orientation) in range(1, 9) else 1
    if resolution[0] and resolution[1] and resolution[2] in (2, 3):  # inch or centimetre
        per_inch = 2.54 if resolution[2] == 3 else 1.0
        info.dpi = tuple(round(_rational(r) * per_inch, 4) for r in resolution[:2])
    info.notes.extend(notes)
    frames, alphas = _orient([rgb], [alpha], info.orientation)
    return frames, alphas, info


def page_mode(photometric: int, data: np.ndarray) -> str:
    names = {0: "grey (min-is-white)", 1: "grey", 2: "RGB", 3: "palette", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}
    channels = data.shape[-1] if data.ndim == 3 else 1
    name = names.get(photometric, f"photometric {photometric}")
    return f"{name}+alpha" if channels in (2, 4) and photometric in (1, 2) else name


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return value[0] / value[1] if value[1] else 0.0
    return float(value)


def _tiff_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value) or None
    array = np.asarray(value)
    if array.dtype.kind in "ui":  # IPTC stored as LONGs: the bytes in file order (big-endian words)
        return array.astype(array.dtype.newbyteorder(">") if array.itemsize > 1 else array.dtype).tobytes() or None
    return None


def _tiff_exif(path: Path) -> bytes | None:
    """A TIFF's photo tags of IFD0 plus its Exif and GPS IFDs, as EXIF bytes (through Pillow)."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            return meta.clean_exif(img.getexif(), keep_ifd0=meta.IFD0_PHOTO_TAGS)
    except Exception:  # noqa: BLE001 - Pillow cannot open every TIFF; the pixels came from tifffile
        return None


def _read_png16(path: Path):
    import imagecodecs
    from PIL import Image

    raw = path.read_bytes()
    check_size(path, int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big"))
    data = imagecodecs.png_decode(raw)
    with _strict_decoding(), Image.open(path) as img:
        text = dict(img.info)
        exif = img.info.get("exif")
    colour_type = raw[25]
    floats, _bits = _unit_float(data)
    rgb, alpha, grey = _split(floats, alpha_channel=colour_type in (4, 6))
    info = PhotoInfo(format="PNG", mode=("grey" if grey else "RGB") + ("+alpha" if alpha is not None else "") + " 16-bit",
                     bit_depth=16, grey=grey)
    _pillow_metadata(info, text, exif)
    frames, alphas = _orient([rgb], [alpha], info.orientation)
    return frames, alphas, info


def _pillow_metadata(info: PhotoInfo, text: dict[str, Any], exif: Any) -> None:
    info.icc_profile = text.get("icc_profile") or None
    xmp = text.get("xmp") or text.get("XML:com.adobe.xmp")
    info.xmp = xmp.encode("utf-8") if isinstance(xmp, str) else (bytes(xmp) if xmp else None)
    info.iptc = meta.photoshop_iptc(text.get("photoshop"))
    info.orientation = meta.orientation_of(exif)
    info.exif = meta.clean_exif(exif)
    if text.get("dpi"):
        info.dpi = tuple(float(v) for v in text["dpi"][:2])


def _read_pillow(path: Path):
    from PIL import Image, ImageSequence, UnidentifiedImageError

    frames: list[np.ndarray] = []
    alphas: list[np.ndarray | None] = []
    with _strict_decoding():
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise UnreadableImage(f"{path}: not an image file Pillow, tifffile or libpng can read") from None
        with img:
            check_size(path, img.width, img.height, getattr(img, "n_frames", 1))
            info = PhotoInfo(format=img.format or path.suffix.lstrip(".").upper(), mode=img.mode)
            exif = img.info.get("exif")
            if exif is None and hasattr(img, "getexif"):
                exif = img.getexif() or None
            _pillow_metadata(info, dict(img.info), exif)
            size = None
            for frame in ImageSequence.Iterator(img):
                frame.load()
                rgb, alpha, grey, bits = _pillow_pixels(frame, info)
                if size is None:
                    size, info.grey, info.bit_depth = rgb.shape[:2], grey, bits
                if rgb.shape[:2] != size:
                    continue  # like ComfyUI: frames of another size are left out
                frames.append(rgb)
                alphas.append(alpha)
    if not frames:
        raise UnreadableImage(f"{path}: no image frames")
    if any(a is None for a in alphas):
        alphas = [None] * len(frames)
    frames, alphas = _orient(frames, alphas, info.orientation)
    return frames, alphas, info


def _pillow_pixels(frame, info: PhotoInfo) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
    """One Pillow frame of any mode -> RGB float32, alpha, grey?, bit depth."""
    mode = frame.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        array, bits = _unit_float(np.asarray(frame).astype(np.uint16))
        rgb, _, grey = _split(array, False)
        return rgb, None, grey, bits
    if mode == "I":  # 32-bit integers; Pillow's 16-bit loaders fill them with 0..65535
        array = np.clip(np.asarray(frame).astype(np.float32) / np.float32(65535.0), 0.0, 1.0)
        rgb, _, grey = _split(array, False)
        return rgb, None, grey, 16
    if mode == "F":
        rgb, _, grey = _split(np.clip(np.nan_to_num(np.asarray(frame, dtype=np.float32)), 0.0, 1.0), False)
        return rgb, None, grey, 32
    if mode == "CMYK":
        converted, with_profile = meta.cmyk_to_srgb_8bit(frame, info.icc_profile)
        if info.converted is None:
            info.converted = "CMYK to sRGB" + (" through its profile" if with_profile else " (no profile: plain formula)")
            info.icc_profile = meta.srgb_profile()
        frame = converted
    elif mode == "P":
        frame = frame.convert("RGBA" if "transparency" in frame.info else "RGB")
    elif mode in ("1", "L"):
        frame = frame.convert("L")
    elif mode in ("La", "PA"):
        frame = frame.convert("LA")
    elif mode in ("RGBa", "RGBX", "RGBA"):
        frame = frame.convert("RGBA") if mode != "RGBX" else frame.convert("RGB")
    elif mode not in ("RGB", "LA"):
        frame = frame.convert("RGB")  # YCbCr, HSV, LAB...: Pillow's own conversion
    array, bits = _unit_float(np.asarray(frame))
    rgb, alpha, grey = _split(array, alpha_channel=frame.mode in ("LA", "RGBA"))
    return rgb, alpha, grey, bits


# ------------------------------------------------------------------ writing


@dataclass(frozen=True)
class OutputFormat:
    kind: str  # "png", "tiff", "jpeg", "webp"
    bits: int = 8
    quality: int | None = None  # JPEG quality; WebP: None or 100 = lossless

    @property
    def name(self) -> str:
        return f"{self.kind}16" if self.bits == 16 else self.kind

    @property
    def extension(self) -> str:
        return {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}[self.kind]


def parse_format(text: str, quality: int | None = None) -> OutputFormat | None:
    """``png|png16|tiff|tiff16|jpeg[:Q]|webp[:Q]`` -> OutputFormat; ``auto`` -> None."""
    name, _, number = str(text).strip().lower().partition(":")
    name = {"jpg": "jpeg", "tif": "tiff", "tif16": "tiff16"}.get(name, name)
    if name not in FORMAT_CHOICES:
        raise ValueError(f"unknown output format {text!r}: use one of {', '.join(FORMAT_CHOICES)} (jpeg:QUALITY, webp:QUALITY)")
    if number:
        if name not in ("jpeg", "webp") or not number.isdigit() or not 1 <= int(number) <= 100:
            raise ValueError(f"{text!r}: a quality (1-100) goes only with jpeg or webp, e.g. jpeg:92")
        quality = int(number)
    if name == "auto":
        return None
    kind = name.removesuffix("16")
    if kind == "jpeg" and quality is None:
        quality = DEFAULT_JPEG_QUALITY
    return OutputFormat(kind, 16 if name.endswith("16") else 8, quality if kind in ("jpeg", "webp") else None)


def resolve_format(fmt: OutputFormat | None, info: PhotoInfo | None) -> OutputFormat:
    """``auto``: the input's depth (16-bit in, 16-bit out), TIFF for TIFF input, else PNG."""
    if fmt is not None:
        return fmt
    deep = info is not None and info.bit_depth > 8
    return OutputFormat("tiff" if info is not None and info.format == "TIFF" else "png", 16 if deep else 8)


def auto_extension(input_path: str | Path) -> str:
    """The extension ``auto`` gives an input, from its name alone (for planning output names)."""
    return ".tif" if Path(input_path).suffix.lower() in TIFF_SUFFIXES else ".png"


def quantise(pixels: np.ndarray, bits: int) -> np.ndarray:
    """float32 0..1 -> uint8/uint16 by rounding (an unchanged 16-bit pixel comes back bit-exact).
    One float32 working buffer, scaled, clipped and rounded in place."""
    top = np.float32(65535.0 if bits == 16 else 255.0)
    scaled = np.multiply(pixels, top, dtype=np.float32)
    np.clip(scaled, 0.0, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16 if bits == 16 else np.uint8)


def encode_photo(pixels: np.ndarray, info: PhotoInfo | None, fmt: OutputFormat, *, alpha: np.ndarray | None = None,
                 metadata: str = "keep", texts: dict[str, str] | None = None) -> tuple[bytes, dict[str, Any]]:
    """One frame (H, W, 3 float32) -> file bytes in ``fmt`` with ``info``'s metadata, and a
    record of what was kept. ``metadata``: keep, "strip GPS" or "strip all" (EXIF, XMP, IPTC
    and text chunks; the ICC profile stays, it is colour, not metadata)."""
    if metadata not in METADATA_CHOICES:
        raise ValueError(f"metadata must be one of {', '.join(METADATA_CHOICES)}")
    info = info or PhotoInfo()
    height, width = pixels.shape[:2]
    samples = quantise(pixels, fmt.bits)
    dropped: list[str] = []
    grey = info.grey and np.array_equal(samples[..., 0], samples[..., 1]) and np.array_equal(samples[..., 0], samples[..., 2])
    samples = samples[..., :1] if grey else samples
    if alpha is not None:
        samples = np.concatenate([samples, quantise(alpha, fmt.bits)[..., None]], axis=-1)
        if fmt.kind == "jpeg":
            samples, alpha = samples[..., :-1], None
            dropped.append("alpha: JPEG has none")
    icc = info.icc_profile
    if icc is not None and meta.icc_colour_space(icc) == "GRAY" and not grey:
        icc = None
        dropped.append("icc_profile: a grey profile cannot describe a colour result")
    strip_all, strip_gps = metadata == "strip all", metadata in ("strip GPS", "strip all")
    exif = None if strip_all else meta.exif_for_output(info.exif, width, height, strip_gps)
    xmp = None if strip_all else meta.xmp_for_output(info.xmp, strip_gps)
    iptc = None if strip_all else info.iptc
    texts = None if strip_all else texts
    if iptc is not None and fmt.kind in ("png", "webp"):
        dropped.append(f"iptc: {fmt.kind.upper()} has no IPTC block (XMP carries IPTC Core)")
        iptc = None
    channels = samples[..., 0] if samples.shape[-1] == 1 else samples
    if fmt.kind == "png":
        data = _encode_png(channels, icc, exif, xmp, info.dpi, texts)
    elif fmt.kind == "tiff":
        data = _encode_tiff(channels, alpha is not None, icc, exif, xmp, iptc, info.dpi)
    else:
        data = _encode_pillow(channels, fmt, icc, exif, xmp, info.dpi)
        if iptc is not None and fmt.kind == "jpeg":
            data = meta.jpeg_with_iptc(data, iptc)
    record = {
        "format": fmt.name, "bit_depth": fmt.bits, "channels": "grey" if grey else "RGB", "alpha": alpha is not None,
        "quality": fmt.quality, "icc_profile": meta.icc_description(icc), "icc_sha256": _sha(icc),
        "icc_identical_to_input": icc is not None and icc == info.icc_profile and info.converted is None,
        "converted": info.converted, "exif": exif is not None, "gps": bool(exif is not None and exif.get_ifd(meta.GPS_IFD))
        or meta.xmp_has_gps(xmp), "xmp": xmp is not None, "iptc": iptc is not None, "metadata": metadata,
        "dropped": dropped, "source": info.summary(),
    }
    return data, record


def _encode_png(samples: np.ndarray, icc, exif, xmp, dpi, texts) -> bytes:
    import imagecodecs

    png = imagecodecs.png_encode(np.ascontiguousarray(samples), level=4)
    return meta.png_with_chunks(png, icc=icc, exif=exif.tobytes() if exif is not None else None, xmp=xmp, dpi=dpi, texts=texts)


def _encode_tiff(samples: np.ndarray, has_alpha: bool, icc, exif, xmp, iptc, dpi) -> bytes:
    import tifffile

    extratags = meta.tiff_exif_tags(exif)
    if xmp:
        extratags.append((700, "B", len(xmp), xmp, True))
    if iptc:
        extratags.append((33723, "B", len(iptc), iptc, True))
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, samples, byteorder="<", photometric="minisblack" if samples.ndim == 2 or samples.shape[-1] == 2 else "rgb",
        planarconfig="contig" if samples.ndim == 3 else None, extrasamples=("unassalpha",) if has_alpha else None,
        compression="zlib", predictor=True, iccprofile=icc, metadata=None, extratags=extratags,
        resolution=tuple(dpi) if dpi else None, resolutionunit="inch" if dpi else None,
        software=(exif.get(meta.SOFTWARE) if exif is not None else None) or "Portrait Polish",
    )
    return meta.tiff_attach_sub_ifds(buffer.getvalue(), exif)


def _encode_pillow(samples: np.ndarray, fmt: OutputFormat, icc, exif, xmp, dpi) -> bytes:
    from PIL import Image

    image = Image.fromarray(samples)
    options: dict[str, Any] = {}
    if icc:
        options["icc_profile"] = icc
    if exif is not None:
        options["exif"] = exif.tobytes()
    if xmp:
        options["xmp"] = xmp
    if dpi:
        options["dpi"] = tuple(dpi)
    buffer = io.BytesIO()
    if fmt.kind == "jpeg":
        image.save(buffer, "JPEG", quality=fmt.quality or DEFAULT_JPEG_QUALITY, subsampling=0, optimize=True, **options)
    else:
        lossless = fmt.quality in (None, 100)
        image.save(buffer, "WEBP", lossless=lossless, quality=100 if lossless else fmt.quality, method=4, exact=True,
                   **options)
    return buffer.getvalue()


# ------------------------------------------------------------------ files


def write_new_file(path: Path, data: bytes) -> bool:
    """Write ``data`` at ``path`` atomically (temp file, fsync, hard link) only if nothing is
    there: returns False, writing nothing, when ``path`` exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # fails if the name exists: no window in which a file is replaced
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if path.exists():
                return False
            os.replace(temp, path)
        return True
    finally:
        temp.unlink(missing_ok=True)


def save_prefix_parts(output_dir: Path, filename_prefix: str, width: int, height: int) -> tuple[Path, str, str]:
    """ComfyUI's ``filename_prefix`` convention: may hold a sub-folder and %width%/%height%;
    never outside the output folder. Returns (folder, name, subfolder)."""
    prefix = filename_prefix.replace("%width%", str(width)).replace("%height%", str(height))
    subfolder, name = os.path.split(os.path.normpath(prefix))
    folder = (output_dir / subfolder).resolve()
    if os.path.commonpath([str(output_dir.resolve()), str(folder)]) != str(output_dir.resolve()):
        raise ValueError(f"filename_prefix {filename_prefix!r} points outside the output folder")
    return folder, name or "PortraitPolish", subfolder


def next_counter(folder: Path, name: str) -> int:
    """One more than the highest ``<name>_NNNNN_`` counter in ``folder`` (ComfyUI's numbering)."""
    pattern = re.compile(re.escape(name) + r"_(\d+)_")
    counters = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))] if folder.is_dir() else []
    return max(counters, default=0) + 1
