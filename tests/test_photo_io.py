"""core.photo_io on synthetic files with known values: every Pillow mode and file layout read
by its own range (16-bit grey is not white), EXIF orientation applied like Pillow's
exif_transpose, strict decoding, and each output format with its metadata (ICC byte for byte,
EXIF copyright and date, XMP, IPTC, GPS removal), at 8 and 16 bits."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from portrait_polish.core import photo_io as pio
from portrait_polish.core import photo_meta as meta

RNG = np.random.default_rng(11)
RGB16 = RNG.integers(0, 65536, (24, 40, 3), dtype=np.uint16)
_Y, _X = np.mgrid[0:24, 0:40]
SMOOTH16 = np.stack([_X * 1600, _Y * 2700, (_X + _Y) * 1000], -1).astype(np.uint16) + RNG.integers(0, 40, (24, 40, 3), dtype=np.uint16)
GREY16 = (np.arange(24 * 40).reshape(24, 40) * 68).astype(np.uint16)  # 0..65212, most values not multiples of 257
COPYRIGHT, DATE = "(c) 2024 Jane Photographer", "2024:05:06 07:08:09"


@functools.lru_cache(maxsize=1)
def adobe_rgb() -> bytes:
    """An Adobe RGB (1998)-like matrix profile (its primaries, D65, gamma 563/256), made by
    LittleCMS once (each new one carries its own creation time)."""
    return imagecodecs.cms_profile("rgb", whitepoint=(0.3127, 0.329, 1.0),
                                   primaries=(0.64, 0.33, 1.0, 0.21, 0.71, 1.0, 0.15, 0.06, 1.0), gamma=563 / 256)


def camera_exif(orientation: int = 1, gps: bool = True) -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B], exif[0x8298], exif[0x0132], exif[0x010F] = "Jane Photographer", COPYRIGHT, DATE, "Canon"
    if orientation != 1:
        exif[meta.ORIENTATION] = orientation
    exif.get_ifd(meta.EXIF_IFD)[0x9003] = DATE
    if gps:
        exif.get_ifd(meta.GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    return exif


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6" exif:GPSLatitude="48,51.4N">'
       b'<dc:rights>(c) 2024 Jane Photographer</dc:rights><exif:GPSLongitude>2,21.05E</exif:GPSLongitude>'
       b"</rdf:Description></rdf:RDF></x:xmpmeta>")
IPTC = b"\x1c\x02\x00\x00\x02\x00\x04\x1c\x02t\x00\x1a(c) 2024 Jane Photographer"  # IIM: version + copyright notice


def _tiff(path: Path, data: np.ndarray, **kw) -> Path:
    tifffile.imwrite(path, data, metadata=None, **kw)
    return path


# ------------------------------------------------------------------ reading every layout


def test_16bit_grey_png_keeps_every_level_and_is_not_white(tmp_path):
    Image.fromarray(GREY16).save(tmp_path / "g.png")  # Pillow opens this as I;16 (ComfyUI's LoadImage: white)
    photo = pio.read_photo(tmp_path / "g.png")
    assert photo.info.bit_depth == 16 and photo.info.grey
    assert np.array_equal(np.rint(photo.pixels[0, ..., 0] * 65535).astype(np.uint16), GREY16)
    assert np.array_equal(photo.pixels[0, ..., 0], photo.pixels[0, ..., 2])
    assert len(np.unique(photo.pixels)) == len(np.unique(GREY16)) > 256


@pytest.mark.parametrize("layout", ["png", "tiff", "tiff_big_endian", "tiff_planar", "tiff_lzw"])
def test_16bit_rgb_files_round_to_their_exact_values(tmp_path, layout):
    if layout == "png":
        path = tmp_path / "a.png"
        path.write_bytes(imagecodecs.png_encode(RGB16))
    else:
        options = {"tiff": {}, "tiff_big_endian": {"byteorder": ">"}, "tiff_planar": {"planarconfig": "separate"},
                   "tiff_lzw": {"compression": "lzw"}}[layout]
        data = np.moveaxis(RGB16, -1, 0) if layout == "tiff_planar" else RGB16
        path = _tiff(tmp_path / "a.tif", data, photometric="rgb", **options)
    photo = pio.read_photo(path)
    assert photo.info.bit_depth == 16 and not photo.info.grey and photo.alpha is None
    assert photo.pixels.dtype == np.float32 and photo.pixels.shape == (1, 24, 40, 3)
    assert np.array_equal(pio.quantise(photo.pixels[0], 16), RGB16)


def test_tiff_float_int_grey_alpha_and_min_is_white(tmp_path):
    ramp = np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)
    photo = pio.read_photo(_tiff(tmp_path / "f.tif", ramp))
    assert photo.info.bit_depth == 32 and np.allclose(photo.pixels[0, ..., 1], ramp)
    ints = (ramp * 65535).astype(np.uint16)
    inverted = pio.read_photo(_tiff(tmp_path / "w.tif", ints, photometric="miniswhite"))
    assert np.allclose(inverted.pixels[0, ..., 0], 1 - ints / 65535, atol=1e-6)
    rgba = np.concatenate([RGB16, GREY16[..., None]], axis=-1)
    with_alpha = pio.read_photo(_tiff(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"]))
    assert np.allclose(with_alpha.alpha[0], GREY16 / 65535, atol=1e-7)
    assert np.array_equal(pio.quantise(with_alpha.pixels[0], 16), RGB16)


def _pillow_mode(mode: str) -> tuple[Image.Image, np.ndarray, np.ndarray | None]:
    """A Pillow image of ``mode`` plus the RGB and alpha values it must read as."""
    grey8 = (GREY16 >> 8).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(GREY16), np.repeat(GREY16[..., None] / 65535, 3, -1), None
    if mode == "I;16B":
        return Image.frombytes("I;16B", (40, 24), GREY16.astype(">u2").tobytes()), np.repeat(GREY16[..., None] / 65535, 3, -1), None
    if mode == "I":  # 32-bit integers holding 16-bit data (Pillow's 16-bit PGM, older 16-bit PNG loaders)
        return Image.fromarray(GREY16.astype(np.int32), "I"), np.repeat(GREY16[..., None] / 65535, 3, -1), None
    if mode == "F":
        values = GREY16 / np.float32(65535)
        return Image.fromarray(values.astype(np.float32), "F"), np.repeat(values[..., None], 3, -1), None
    if mode == "LA":
        alpha = np.flipud(grey8)
        return Image.fromarray(np.stack([grey8, alpha], -1), "LA"), np.repeat(grey8[..., None] / 255, 3, -1), alpha / 255
    if mode == "P":
        image = Image.fromarray((np.arange(24 * 40).reshape(24, 40) % 4).astype(np.uint8), "P")
        image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
        image.info["transparency"] = 3
        index = np.asarray(image)
        colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]]) / 255
        return image, colours[index], (index != 3).astype(np.float32)
    if mode == "CMYK":
        cmyk = np.zeros((24, 40, 4), np.uint8)
        cmyk[..., 0], cmyk[..., 3] = 255, 51  # full cyan, 20 % black, no profile: the plain formula
        return Image.fromarray(cmyk, "CMYK"), np.broadcast_to(np.array([0, 204, 204]) / 255, (24, 40, 3)), None
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "LA", "P", "CMYK"])
def test_every_pillow_mode_reads_by_its_own_range(mode):
    image, rgb, alpha = _pillow_mode(mode)
    assert image.mode == mode
    info = pio.PhotoInfo()
    pixels, got_alpha, _grey, bits = pio._pillow_pixels(image, info)
    assert pixels.dtype == np.float32 and pixels.shape == (24, 40, 3)
    assert np.allclose(pixels, rgb, atol=1e-6), f"{mode}: max error {np.abs(pixels - rgb).max()}"
    if alpha is None:
        assert got_alpha is None
    else:
        assert np.allclose(got_alpha, alpha, atol=1e-6)
    assert bits == {"I;16": 16, "I;16B": 16, "I": 16, "F": 32}.get(mode, 8)


@pytest.mark.parametrize("name", ["la.png", "p_transparent.png", "p_transparent.gif", "grey16.pgm", "cmyk.jpg"])
def test_files_of_those_modes_read_through_read_photo(tmp_path, name):
    mode = {"la.png": "LA", "p_transparent.png": "P", "p_transparent.gif": "P", "grey16.pgm": "I", "cmyk.jpg": "CMYK"}[name]
    image, rgb, alpha = _pillow_mode(mode)
    path = tmp_path / name
    if name.endswith(".pgm"):
        path.write_bytes(b"P5\n40 24\n65535\n" + GREY16.astype(">u2").tobytes())
    else:
        image.save(path, **({"quality": 100} if name.endswith(".jpg") else {}))
    photo = pio.read_photo(path)
    tolerance = 3 / 255 if name.endswith(".jpg") else 1e-6  # JPEG is lossy
    assert np.abs(photo.pixels[0] - rgb).max() <= tolerance
    assert (photo.alpha is None) == (alpha is None)
    if alpha is not None:
        assert np.allclose(photo.alpha[0], alpha, atol=1e-6)
    if name.endswith(".pgm"):
        assert photo.info.bit_depth == 16 and np.array_equal(pio.quantise(photo.pixels[0, ..., 0], 16), GREY16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow_and_reset(tmp_path, orientation):
    pixels = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=camera_exif(orientation).tobytes())
    photo = pio.read_photo(path)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img)) / np.float32(255)
    assert photo.info.orientation == orientation
    assert np.array_equal(photo.pixels[0], expected.astype(np.float32))
    assert meta.orientation_of(photo.info.exif) == 1  # the tag follows the pixels: reset


def test_16bit_tiff_orientation_applied_at_16_bits(tmp_path):
    path = _tiff(tmp_path / "o.tif", RGB16, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    photo = pio.read_photo(path)
    assert photo.info.orientation == 6
    assert np.array_equal(pio.quantise(photo.pixels[0], 16), np.rot90(RGB16, -1))


@pytest.mark.parametrize("kind", ["jpg", "png", "tif", "png16", "webp"])
def test_truncated_files_are_refused_not_half_grey(tmp_path, kind):
    path = tmp_path / f"t.{kind.removesuffix('16')}"
    if kind == "png16":
        path.write_bytes(imagecodecs.png_encode(RGB16))
    elif kind == "tif":
        _tiff(path, RGB16, photometric="rgb")
    else:
        Image.fromarray((RGB16 >> 8).astype(np.uint8)).save(path, **({"lossless": True} if kind == "webp" else {}))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(pio.UnreadableImage, match="t\\."):
        pio.read_photo(path)


def test_strict_even_when_pillow_was_made_lenient(tmp_path):
    from PIL import ImageFile

    path = tmp_path / "t.jpg"
    Image.fromarray((RGB16 >> 8).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-200])
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what ComfyUI's node_helpers.pillow leaves behind after a retry
    try:
        with pytest.raises(pio.UnreadableImage, match="truncated|Truncated"):
            pio.check_decodes(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # and it is restored for others
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_not_an_image_is_a_clear_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(pio.UnreadableImage, match="x.png"):
        pio.read_photo(tmp_path / "x.png")


# ------------------------------------------------------------------ writing with metadata


def _source_info(icc: bytes | None = None, bits: int = 16, fmt: str = "TIFF") -> pio.PhotoInfo:
    return pio.PhotoInfo(format=fmt, bit_depth=bits, icc_profile=icc, exif=camera_exif().tobytes(), xmp=XMP, iptc=IPTC,
                         dpi=(300.0, 300.0))


@pytest.mark.parametrize("name", ["png", "png16", "tiff", "tiff16", "jpeg:97", "webp", "webp:90"])
def test_every_format_keeps_profile_exif_and_xmp(tmp_path, name):
    icc = adobe_rgb()
    fmt = pio.parse_format(name)
    pixels = SMOOTH16 / np.float32(65535)
    data, record = pio.encode_photo(pixels, _source_info(icc), fmt)
    path = tmp_path / f"out{fmt.extension}"
    path.write_bytes(data)
    back = pio.read_photo(path)
    assert back.info.icc_profile == icc  # byte for byte
    assert record["icc_identical_to_input"] and record["exif"] and record["xmp"]
    summary = meta.exif_summary(back.info.exif)
    assert summary["copyright"] == COPYRIGHT and summary["datetime"] == DATE and summary["datetime_original"] == DATE
    assert b"Jane Photographer</dc:rights>" in back.info.xmp and b'tiff:Orientation="1"' in back.info.xmp
    assert back.info.bit_depth == fmt.bits
    lossy = fmt.kind == "jpeg" or (fmt.kind == "webp" and fmt.quality not in (None, 100))
    expected = pio.quantise(pixels, fmt.bits)
    got = pio.quantise(back.pixels[0], fmt.bits)
    if lossy:
        assert np.abs(got.astype(int) - expected).mean() < 3  # lossy WebP also subsamples chroma
    else:
        assert np.array_equal(got, expected)
    assert record["iptc"] == (fmt.kind in ("jpeg", "tiff"))
    if fmt.kind in ("jpeg", "tiff"):
        assert back.info.iptc == IPTC
    if fmt.kind in ("png", "tiff", "jpeg"):
        assert back.info.dpi == pytest.approx((300.0, 300.0), abs=0.01)


@pytest.mark.parametrize("name", ["png16", "tiff16", "jpeg"])
def test_strip_gps_and_strip_all(tmp_path, name):
    fmt = pio.parse_format(name)
    info = _source_info(adobe_rgb())
    assert meta.exif_summary(info.exif)["gps"] and meta.xmp_has_gps(info.xmp)
    data, record = pio.encode_photo(RGB16 / np.float32(65535), info, fmt, metadata="strip GPS")
    (tmp_path / "g").write_bytes(data)
    back = pio.read_photo(tmp_path / "g")
    assert not record["gps"] and not meta.exif_summary(back.info.exif)["gps"] and not meta.xmp_has_gps(back.info.xmp)
    assert meta.exif_summary(back.info.exif)["copyright"] == COPYRIGHT and b"dc:rights" in back.info.xmp
    data, record = pio.encode_photo(RGB16 / np.float32(65535), info, fmt, metadata="strip all", texts={"prompt": "{}"})
    (tmp_path / "s").write_bytes(data)
    back = pio.read_photo(tmp_path / "s")
    assert back.info.xmp is None and back.info.iptc is None
    assert not {"copyright", "artist", "datetime_original", "make"} & set(meta.exif_summary(back.info.exif))
    assert back.info.icc_profile == info.icc_profile  # colour, not metadata: kept
    assert b"prompt" not in data


def test_exif_written_into_tiff_is_a_real_exif_ifd(tmp_path):
    """The Exif and GPS sub-IFDs land where TIFF readers look (tifffile and Pillow read them)."""
    data, _ = pio.encode_photo(RGB16 / np.float32(65535), _source_info(), pio.parse_format("tiff16"))
    (tmp_path / "e.tif").write_bytes(data)
    with tifffile.TiffFile(tmp_path / "e.tif") as tif:
        tags = tif.pages[0].tags
        assert tags["Copyright"].value == COPYRIGHT and tags["ExifTag"].value["DateTimeOriginal"] == DATE
        assert tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        codes = [tag.code for tag in tags.values()]
        assert codes == sorted(codes)  # IFD entries stay in ascending order
    with Image.open(tmp_path / "e.tif") as img:
        assert img.getexif().get_ifd(meta.EXIF_IFD)[0x9003] == DATE


def test_16bit_output_of_an_unchanged_picture_is_bit_exact_and_grey_stays_grey(tmp_path):
    info = pio.PhotoInfo(format="PNG", bit_depth=16, grey=True)
    pixels = np.repeat(GREY16[..., None] / np.float32(65535), 3, -1)
    data, record = pio.encode_photo(pixels, info, pio.resolve_format(None, info))
    assert record["format"] == "png16" and record["channels"] == "grey"
    (tmp_path / "g.png").write_bytes(data)
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "I;16" and np.array_equal(np.asarray(img), GREY16)


def test_to_srgb_converts_with_littlecms_in_float(tmp_path):
    icc = adobe_rgb()
    path = _tiff(tmp_path / "w.tif", RGB16, photometric="rgb", iccprofile=icc)
    kept = pio.read_photo(path)
    converted = pio.read_photo(path, to_srgb=True)
    assert kept.info.icc_profile == icc and converted.info.converted.startswith("to sRGB from")
    assert converted.info.icc_profile == meta.srgb_profile()
    # The same colours as Pillow's 8-bit LittleCMS transform, to its rounding.
    source8 = Image.fromarray((RGB16 >> 8).astype(np.uint8))
    reference = ImageCms.profileToProfile(source8, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                          ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")))
    ours = meta.convert_to_srgb(((RGB16 >> 8) / np.float32(255)).astype(np.float32), icc)
    assert np.abs(ours * 255 - np.asarray(reference)).max() <= 1.5
    assert len(np.unique(pio.quantise(converted.pixels[0], 16))) > 4 * 256  # float all the way: no 8-bit step


def test_format_parsing_and_auto_choice():
    assert pio.parse_format("auto") is None
    assert pio.parse_format("jpeg:92") == pio.OutputFormat("jpeg", 8, 92)
    assert pio.parse_format("jpeg").quality == pio.DEFAULT_JPEG_QUALITY
    assert pio.parse_format("tiff16").extension == ".tif" and pio.parse_format("webp").quality is None
    for bad in ("gif", "png:90", "jpeg:0", "jpeg:abc"):
        with pytest.raises(ValueError):
            pio.parse_format(bad)
    assert pio.resolve_format(None, pio.PhotoInfo(format="TIFF", bit_depth=16)).name == "tiff16"
    assert pio.resolve_format(None, pio.PhotoInfo(format="TIFF", bit_depth=8)).name == "tiff"
    assert pio.resolve_format(None, pio.PhotoInfo(format="PNG", bit_depth=16)).name == "png16"
    assert pio.resolve_format(None, pio.PhotoInfo(format="JPEG", bit_depth=8)).name == "png"
    assert pio.resolve_format(None, None).name == "png"


def test_write_new_file_never_replaces(tmp_path):
    target = tmp_path / "a.png"
    assert pio.write_new_file(target, b"first")
    assert not pio.write_new_file(target, b"second")
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("kind", ["jpeg", "png16", "tiff16"])
def test_photos_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch, kind):
    # 300x200 = 0.06 MP against a limit of 0.05 MP stands in for a 200 MP file against 150 MP.
    rgb = np.random.default_rng(0).random((200, 300, 3)).astype(np.float32)
    if kind == "jpeg":
        path = tmp_path / "big.jpg"
        Image.fromarray((rgb * 255).astype(np.uint8)).save(path, quality=90)
    else:
        fmt = pio.parse_format(kind)
        data, _ = pio.encode_photo(rgb, pio.PhotoInfo(bit_depth=16), fmt)
        path = tmp_path / f"big.{fmt.extension}"
        path.write_bytes(data)
    monkeypatch.setenv(pio.MAX_MEGAPIXELS_ENV, "0.05")
    with pytest.raises(pio.PhotoTooLarge, match=r"300x200 is 0 MP, above the 0 MP limit.*PORTRAIT_POLISH_MAX_MEGAPIXELS=1 \(CLI: --max-megapixels 1\)"):
        pio.read_photo(path)
    monkeypatch.setenv(pio.MAX_MEGAPIXELS_ENV, "0")  # no limit
    assert pio.read_photo(path).pixels.shape == (1, 200, 300, 3)
    monkeypatch.delenv(pio.MAX_MEGAPIXELS_ENV)
    assert pio.max_megapixels() == pio.DEFAULT_MAX_MEGAPIXELS and pio.read_photo(path).pixels.shape == (1, 200, 300, 3)
