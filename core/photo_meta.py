"""A photo file's metadata: ICC profile, EXIF, XMP and IPTC, in the shapes each format wants.

Pillow parses and serialises EXIF (``Image.Exif``) and reads ICC profiles (``ImageCms``);
LittleCMS (through imagecodecs, which also gives tifffile its codecs) converts float32
pixels between profiles without an 8-bit round trip. What is left here is the glue:

- EXIF for a retouched output: orientation reset to 1 (the reader applied it to the pixels),
  the IFD1 thumbnail dropped (it would show the unretouched photo), the pixel dimensions
  set to the output's, GPS removed on request;
- XMP: the same orientation reset and GPS removal on the packet's text;
- the containers Pillow or tifffile cannot fill themselves: PNG chunks for 16-bit PNGs,
  the Photoshop APP13 block that carries IPTC in a JPEG, and the Exif/GPS sub-IFDs of a TIFF.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import zlib
from typing import Any

import numpy as np

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
ORIENTATION = 0x0112
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
# IFD0 tags that describe the photo (not the file's layout): copied between formats.
IFD0_PHOTO_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)  # description, make, model, software, datetime, artist, copyright
ASCII_IFD0_TAGS = set(IFD0_PHOTO_TAGS)
IPTC_RESOURCE = 0x0404  # the Photoshop image resource that holds IPTC-IIM records

ORIENTATION_NAMES = {1: "normal", 2: "mirrored", 3: "rotated 180", 4: "mirrored vertically",
                     5: "transposed", 6: "rotated 90 CW", 7: "transversed", 8: "rotated 90 CCW"}


# ------------------------------------------------------------------ orientation


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``array`` (H, W, ...) upright for an EXIF/TIFF orientation value (1..8), as
    Pillow's ``ImageOps.exif_transpose`` does, at any bit depth."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


# ------------------------------------------------------------------ EXIF


def load_exif(data: Any):
    """``Image.Exif`` from raw EXIF bytes (with or without the ``Exif\\0\\0`` header) or an
    ``Image.Exif`` (returned as it is); None when there is none."""
    if not data:
        return None
    from PIL import Image

    if isinstance(data, Image.Exif):
        return data

    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, never a failed photo
        return None
    return exif if len(exif) else None


def orientation_of(exif_bytes: bytes | None) -> int:
    exif = load_exif(exif_bytes)
    value = exif.get(ORIENTATION, 1) if exif is not None else 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def clean_exif(data: Any, *, keep_ifd0: tuple[int, ...] | None = None) -> bytes | None:
    """EXIF as it should follow the pixels: orientation 1, no thumbnail (IFD1 is never
    written by Pillow's serialiser), no stale Interop pointer. ``keep_ifd0`` limits IFD0 to
    those tags (a TIFF's IFD0 also holds its strip layout, which is not photo metadata)."""
    exif = load_exif(data)
    if exif is None:
        return None
    from PIL import Image

    out = Image.Exif()
    for tag, value in exif.items():
        if tag in (EXIF_IFD, GPS_IFD, INTEROP_IFD) or (keep_ifd0 is not None and tag not in keep_ifd0 and tag != ORIENTATION):
            continue
        out[tag] = value
    if ORIENTATION in out:
        out[ORIENTATION] = 1
    for pointer in (EXIF_IFD, GPS_IFD):
        try:
            sub = exif.get_ifd(pointer)
        except Exception:  # noqa: BLE001 - a broken sub-IFD is left out
            sub = {}
        if sub:
            out.get_ifd(pointer).update({k: v for k, v in sub.items() if k != INTEROP_IFD})
    try:
        return out.tobytes()
    except Exception:  # noqa: BLE001 - a value Pillow cannot write back: drop EXIF, keep the photo
        return None


def exif_for_output(data: bytes | None, width: int, height: int, strip_gps: bool):
    """The ``Image.Exif`` to write with a result of ``width`` x ``height``."""
    exif = load_exif(data)
    if exif is None:
        return None
    if strip_gps and GPS_IFD in exif:
        exif.get_ifd(GPS_IFD).clear()
        del exif[GPS_IFD]
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    sub = exif.get_ifd(EXIF_IFD)
    if PIXEL_X in sub or PIXEL_Y in sub:
        sub[PIXEL_X], sub[PIXEL_Y] = int(width), int(height)
    return exif


def exif_summary(data: bytes | None) -> dict[str, Any]:
    """A few fields a person checks (camera, date, copyright) plus whether GPS is present."""
    exif = load_exif(data)
    if exif is None:
        return {}
    sub = exif.get_ifd(EXIF_IFD)
    fields = {"make": exif.get(0x010F), "model": exif.get(0x0110), "artist": exif.get(0x013B),
              "copyright": exif.get(0x8298), "datetime": exif.get(0x0132), "datetime_original": sub.get(0x9003)}
    summary: dict[str, Any] = {k: str(v).strip("\x00 ") for k, v in fields.items() if v}
    summary["gps"] = bool(exif.get_ifd(GPS_IFD))
    return summary


# ------------------------------------------------------------------ XMP

_XMP_GPS = re.compile(rb'\s+exif:GPS\w+="[^"]*"|<exif:(GPS\w+)\b[^>]*?(?:/>|>.*?</exif:\1>)', re.S)
_XMP_ORIENTATION_ATTR = re.compile(rb'(tiff:Orientation=")[1-8](")')
_XMP_ORIENTATION_ELEM = re.compile(rb"(<tiff:Orientation>)\s*[1-8]\s*(</tiff:Orientation>)")


def xmp_for_output(xmp: bytes | None, strip_gps: bool) -> bytes | None:
    """XMP with tiff:Orientation reset to 1 and, on request, every exif:GPS* property removed."""
    if not xmp:
        return None
    xmp = _XMP_ORIENTATION_ELEM.sub(rb"\g<1>1\g<2>", _XMP_ORIENTATION_ATTR.sub(rb"\g<1>1\g<2>", xmp))
    if strip_gps:
        xmp = _XMP_GPS.sub(b"", xmp)
    return xmp


def xmp_has_gps(xmp: bytes | None) -> bool:
    return bool(xmp) and _XMP_GPS.search(xmp) is not None


# ------------------------------------------------------------------ ICC


def icc_description(icc: bytes | None) -> str | None:
    if not icc:
        return None
    try:
        from PIL import ImageCms

        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or "unnamed profile"
    except Exception:  # noqa: BLE001 - kept byte for byte even when LittleCMS cannot read it
        return "unreadable profile"


def icc_colour_space(icc: bytes | None) -> str | None:
    """The profile's data colour space from its header ("RGB", "GRAY", "CMYK", ...)."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip()


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """LittleCMS's sRGB profile with a fixed creation date (LittleCMS stamps the current time),
    so a converted output is the same file on every run."""
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    profile[84:100] = bytes(16)  # no profile ID (it would hash the date)
    return bytes(profile)


def convert_to_srgb(pixels: np.ndarray, icc: bytes) -> np.ndarray:
    """float32 (..., 3) pixels in ``icc``'s RGB -> sRGB with LittleCMS, in float (no 8-bit
    step); colours outside sRGB are clipped, as an 8-bit conversion would clip them."""
    import imagecodecs

    flat = np.ascontiguousarray(pixels.reshape(-1, 1, 3), dtype=np.float32)
    try:
        out = imagecodecs.cms_transform(flat, icc, srgb_profile(), colorspace="rgb", outcolorspace="rgb")
    except Exception as exc:  # noqa: BLE001 - a profile LittleCMS cannot use
        raise ValueError(f"the embedded ICC profile cannot be used for conversion: {exc}") from None
    return np.clip(out, 0.0, 1.0).reshape(pixels.shape).astype(np.float32, copy=False)


def cmyk_to_srgb_8bit(image, icc: bytes | None):
    """A Pillow CMYK image -> RGB: through its own CMYK profile with LittleCMS when it has
    one, else Pillow's plain conversion. Returns (image, converted_with_profile)."""
    if icc and icc_colour_space(icc) == "CMYK":
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            return ImageCms.profileToProfile(image, source, target, outputMode="RGB"), True
        except Exception:  # noqa: BLE001 - fall back to the plain formula below
            pass
    return image.convert("RGB"), False


# ------------------------------------------------------------------ containers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_chunks(png: bytes, *, icc: bytes | None = None, exif: bytes | None = None, xmp: bytes | None = None,
                    dpi: tuple[float, float] | None = None, texts: dict[str, str] | None = None) -> bytes:
    """Insert metadata chunks after IHDR (where the PNG spec wants iCCP, pHYs and eXIf: before
    IDAT). iCCP holds the profile zlib-compressed, so it decompresses byte for byte."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    end_of_ihdr = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    chunks = []
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        per_metre = [max(1, round(float(value) / 0.0254)) for value in dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    for key, value in (texts or {}).items():
        chunks.append(_png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace")))
    return png[:end_of_ihdr] + b"".join(chunks) + png[end_of_ihdr:]


def photoshop_iptc(resources: dict[int, bytes] | None) -> bytes | None:
    """The IPTC-IIM block from Pillow's parsed Photoshop resources (JPEG APP13)."""
    if not resources:
        return None
    data = resources.get(IPTC_RESOURCE)
    return bytes(data) if data else None


def jpeg_with_iptc(jpeg: bytes, iptc: bytes) -> bytes:
    """Add an APP13 "Photoshop 3.0" segment with the IPTC block after the APPn segments
    Pillow wrote (JFIF, EXIF, ICC, XMP), where readers look for it."""
    resource = b"8BIM" + struct.pack(">H", IPTC_RESOURCE) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    if len(iptc) % 2:
        resource += b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    if len(payload) + 2 > 0xFFFF:
        return jpeg  # an IPTC block that large does not fit one segment; left out (recorded by the caller)
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    position = 2
    while position + 4 <= len(jpeg) and jpeg[position] == 0xFF and 0xE0 <= jpeg[position + 1] <= 0xEF:
        position += 2 + struct.unpack(">H", jpeg[position + 2 : position + 4])[0]
    return jpeg[:position] + segment + jpeg[position:]


# tifffile refuses to write the Exif and GPS pointer tags itself; placeholders with the
# next lower (unassigned in IFD0) codes keep IFD0's ascending tag order when renamed.
_POINTER_PLACEHOLDERS = {EXIF_IFD: EXIF_IFD - 1, GPS_IFD: GPS_IFD - 1}
SOFTWARE = 0x0131


def tiff_exif_tags(exif) -> list[tuple[int, str, int, Any, bool]]:
    """tifffile ``extratags`` for the photo text tags of IFD0 (Software goes through
    tifffile's own argument) plus placeholders for the Exif and GPS sub-IFD pointers, which
    :func:`tiff_attach_sub_ifds` turns into the real ones."""
    tags: list[tuple[int, str, int, Any, bool]] = []
    if exif is None:
        return tags
    for tag in IFD0_PHOTO_TAGS:
        value = exif.get(tag)
        if tag != SOFTWARE and isinstance(value, str) and value.strip("\x00 "):
            tags.append((tag, "s", 0, value, True))
    for pointer, placeholder in _POINTER_PLACEHOLDERS.items():
        if exif.get_ifd(pointer):
            tags.append((placeholder, "I", 1, 0, True))
    return tags


def tiff_attach_sub_ifds(tiff: bytes, exif) -> bytes:
    """Append the Exif and GPS sub-IFDs (serialised by Pillow at their final file offsets)
    to a little-endian TIFF tifffile wrote, and turn IFD0's placeholders into pointers to them."""
    if exif is None:
        return tiff
    import tifffile
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    with tifffile.TiffFile(io.BytesIO(tiff)) as tif:
        if tif.byteorder != "<":
            return tiff
        tags = tif.pages[0].tags
        slots = {pointer: (tags[code].offset, tags[code].valueoffset)
                 for pointer, code in _POINTER_PLACEHOLDERS.items() if code in tags}
    out = bytearray(tiff)
    for pointer, (entry, slot) in slots.items():
        values = {k: v for k, v in exif.get_ifd(pointer).items() if k != INTEROP_IFD}
        if len(out) % 2:
            out += b"\x00"  # IFDs start on a word boundary
        ifd = ImageFileDirectory_v2(prefix=b"II")
        for tag, value in values.items():
            ifd[tag] = value
        offset = len(out)
        try:
            out += ifd.tobytes(offset)
        except Exception:  # noqa: BLE001 - a value Pillow cannot serialise: an empty sub-IFD instead
            del out[offset:]
            out += b"\x00" * 6
        out[entry : entry + 2] = struct.pack("<H", pointer)
        out[slot : slot + 4] = struct.pack("<I", offset)
    return bytes(out)
