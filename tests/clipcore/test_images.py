from __future__ import annotations

import io
import struct

import pytest
from PIL import EpsImagePlugin, Image, ImageDraw, ImageOps, features
from PIL.JpegImagePlugin import JpegImageFile

from clipcore import images
from clipcore.errors import InvalidImage, InvalidInput
from clipcore.images import (
    WorkingSize,
    check_filename,
    decode_image,
    decode_reduced,
    inspect_image,
)
from tests.support import png_bytes, truncated_png

LIMIT = 1_000_000
BIG = 40_000_000
ACCEPTED = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
SEND = "send JPEG, PNG, WebP, GIF, BMP or TIFF"
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
    b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_inspect_reads_only_the_header() -> None:
    info = inspect_image(png_bytes((1, 2, 3), (48, 40)), "a.png", max_pixels=LIMIT)
    assert (info.format, info.width, info.height) == ("PNG", 48, 40)
    # Truncated pixel data passes inspection: it fails later, alone, in the worker.
    inspect_image(truncated_png(), "cut.png", max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"just some text", "not an image"),
        (png_bytes((0, 0, 0))[:20], "header"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
    ],
)
def test_inspect_refuses_non_images_naming_the_file(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage, match=r"x\.bin") as caught:
        inspect_image(data, "x.bin", max_pixels=LIMIT, field="images[3]")
    assert message in caught.value.detail
    assert caught.value.errors[0].field == "images[3]"


def test_inspect_refuses_too_many_pixels() -> None:
    bomb = encode(Image.new("L", (1001, 1000)), "PNG")
    with pytest.raises(InvalidImage, match="over the limit"):
        inspect_image(bomb, "bomb.png", max_pixels=LIMIT)
    # Far over the limit, Pillow's own guard fires first; the answer is just as clear.
    with pytest.raises(InvalidImage, match="bomb"):
        inspect_image(encode(Image.new("L", (3000, 3000)), "PNG"), "bomb.png", max_pixels=LIMIT)


def test_decode_truncated_data_is_an_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="cannot be decoded"):
        decode_image(truncated_png(), "cut.png", max_pixels=LIMIT)


def test_decode_honours_exif_orientation() -> None:
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = decode_image(encode(wide, "JPEG", exif=exif), "photo.jpg", max_pixels=LIMIT)
    assert decoded.size == (20, 40)


def test_decode_composites_alpha_on_white_and_scales_16_bit() -> None:
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode_image(encode(transparent, "PNG"), "a.png", max_pixels=LIMIT).getpixel((0, 0)) == (
        255,
        255,
        255,
    )
    grey16 = Image.new("I;16", (8, 8), 32768)
    pixel = decode_image(encode(grey16, "PNG"), "g.png", max_pixels=LIMIT).getpixel((0, 0))
    assert pixel == (128, 128, 128)
    palette = Image.new("P", (8, 8), 0)
    assert decode_image(encode(palette, "GIF"), "p.gif", max_pixels=LIMIT).mode == "RGB"


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.png", "C:\\x\\y.png", "..", "a\x00.png"])
def test_filenames_with_path_parts_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="path parts"):
        check_filename(name, 0)


def test_plain_and_missing_filenames() -> None:
    assert check_filename("cat photo.png", 0) == "cat photo.png"
    assert check_filename(None, 4) == "image-4"


def quadrants(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Red top-left, blue bottom-right on light grey: a turn or a flip shows."""
    image = Image.new("RGB", size, (230, 230, 230))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=(220, 30, 30))
    draw.rectangle((width // 2, height // 2, width, height), fill=(30, 60, 220))
    return image.convert(mode)


def handmade_psd(width: int = 8, height: int = 8) -> bytes:
    """A minimal valid Photoshop file: 3 channels of raw 8-bit pixels, no resources."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0)
    return header + sections + bytes(3 * width * height)


def writable_formats() -> dict[str, bytes]:
    """A small picture in every format this Pillow can write (in the first mode it takes)."""
    Image.init()
    samples = {}
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "L", "1", "P", "F"):
            try:
                samples[fmt] = encode(Image.new(mode, (16, 16), 1), fmt)
                break
            except (OSError, ValueError, KeyError):
                continue
    return samples


def test_only_the_listed_formats_are_accepted_by_inspection_and_decoding() -> None:
    samples = writable_formats()
    assert {"EPS", "ICO", "PPM", "TGA", "PDF"} <= set(samples)  # the comparison is not empty
    accepted = set()
    for fmt, data in samples.items():
        name = f"file.{fmt.lower()}"
        try:
            inspect_image(data, name, max_pixels=LIMIT)
        except InvalidImage as exc:
            assert exc.detail.startswith(f"{name}: ") and "JPEG, PNG, WebP, GIF, BMP or TIFF" in (
                exc.detail
            ), exc.detail
            with pytest.raises(InvalidImage):  # the worker checks again
                decode_image(data, name, max_pixels=LIMIT)
            continue
        assert decode_image(data, name, max_pixels=LIMIT).mode == "RGB"
        accepted.add(fmt)
    assert accepted == ACCEPTED
    # A phone camera's multi-picture JPEG: the JPEG plugin opens it, as MPO.
    frames = [quadrants((32, 24)), quadrants((32, 24)).rotate(180)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert inspect_image(data, "phone.jpg", max_pixels=LIMIT).format == "MPO"
    assert decode_image(data, "phone.jpg", max_pixels=LIMIT).size == (32, 24)


def refused_samples() -> list[tuple[str, bytes, str]]:
    samples = writable_formats()
    cases = [
        ("drawing.eps", EPS, "EPS"),
        ("pillow.eps", samples["EPS"], "EPS"),
        ("favicon.ico", samples["ICO"], "ICO"),
        ("layers.psd", handmade_psd(), "PSD"),
        ("texture.dds", samples["DDS"], "DDS"),
        ("icon.icns", samples["ICNS"], "ICNS"),
        ("picture.qoi", samples["QOI"], "QOI"),
    ]
    if features.check("jpg_2000"):
        cases.append(("scan.jp2", encode(Image.new("RGB", (16, 16)), "JPEG2000"), "JPEG 2000"))
    if features.check("avif"):
        cases.append(("photo.avif", samples["AVIF"], "AVIF"))
    return cases


@pytest.mark.parametrize(("filename", "data", "name"), refused_samples())
def test_a_refused_format_is_named_with_the_accepted_ones(
    filename: str, data: bytes, name: str
) -> None:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(data, filename, max_pixels=LIMIT, field="images[2]")
    assert caught.value.detail == f"{filename}: {name} images are not accepted; {SEND}"
    assert caught.value.errors[0].field == "images[2]"


def test_the_eps_plugin_never_reads_an_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: opened.append(a))
    for check in (inspect_image, decode_image):
        with pytest.raises(InvalidImage, match="EPS images are not accepted"):
            check(EPS, "drawing.eps", max_pixels=LIMIT)
    assert opened == []


def test_unknown_bytes_are_refused_with_the_accepted_formats() -> None:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(b"%PDF-1.4\n%%EOF\n", "doc.pdf", max_pixels=LIMIT)
    assert caught.value.detail == (
        "doc.pdf: not an image in a format clipq can read (JPEG, PNG, WebP, GIF, BMP or TIFF)"
    )


def as_decoded_before(data: bytes) -> Image.Image:
    """clipq's decoding without working sizes: the whole picture, turned, in RGB."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return images._to_rgb(ImageOps.exif_transpose(image))


def small_files() -> dict[str, bytes]:
    turned = Image.Exif()
    turned[0x0112] = 6
    half = quadrants((48, 40), "RGBA")
    half.putalpha(Image.linear_gradient("L").resize(half.size))
    palette = quadrants((48, 40)).quantize(colors=4)
    return {
        "rgb png": encode(quadrants((48, 40)), "PNG"),
        "rgba png": encode(half, "PNG"),
        "palette with transparency": encode(palette, "PNG", transparency=0),
        "16-bit grey": encode(Image.new("I;16", (48, 40), 40000), "PNG"),
        "grey with alpha": encode(quadrants((48, 40), "LA"), "PNG"),
        "turned jpeg": encode(quadrants((60, 40)), "JPEG", exif=turned),
        "cmyk jpeg": encode(quadrants((48, 40), "CMYK"), "JPEG"),
        "long gif": encode(quadrants((200, 50)), "GIF"),
    }


@pytest.mark.parametrize("case", list(small_files()))
def test_a_picture_within_the_working_size_is_decoded_exactly_as_before(case: str) -> None:
    data = small_files()[case]
    working = WorkingSize(shortest_side=64, max_aspect=4)
    decoded = decode_reduced(data, "small", max_pixels=LIMIT, working=working)
    expected = as_decoded_before(data)
    assert decoded.image.mode == "RGB" and decoded.image.size == expected.size
    assert decoded.image.tobytes() == expected.tobytes()
    assert (decoded.width, decoded.height) == expected.size


def test_a_large_picture_is_reduced_as_it_is_decoded() -> None:
    data = encode(quadrants((1600, 1200)), "PNG")
    decoded = decode_reduced(data, "big.png", max_pixels=BIG, working=WorkingSize(shortest_side=96))
    assert decoded.image.size == (128, 96) and decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (1600, 1200)
    assert decoded.image.getpixel((10, 10)) == (220, 30, 30)
    assert decoded.image.getpixel((120, 90)) == (30, 60, 220)
    bounded = decode_reduced(data, "big.png", max_pixels=BIG, working=WorkingSize(longest_side=400))
    assert bounded.image.size == (400, 300)


def test_a_long_picture_keeps_its_centre_when_the_consumer_reads_only_that() -> None:
    strip = Image.new("RGB", (24_000, 3), (0, 0, 0))
    strip.paste((250, 200, 0), (11_990, 0, 12_010, 3))
    working = WorkingSize(shortest_side=64, max_aspect=4)
    decoded = decode_reduced(encode(strip, "PNG"), "strip.png", max_pixels=BIG, working=working)
    assert decoded.image.size == (12, 3) and (decoded.width, decoded.height) == (24_000, 3)
    assert decoded.image.getpixel((6, 1)) == (250, 200, 0)


def test_a_large_jpeg_is_decoded_small_by_libjpeg_then_turned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drafted: list[tuple[int, int]] = []
    draft = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None):
        result = draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    turned = Image.Exif()
    turned[0x0112] = 6  # shown turned 90° clockwise
    data = encode(quadrants((4000, 3000)), "JPEG", exif=turned, quality=95)
    decoded = decode_reduced(
        data, "photo.jpg", max_pixels=BIG, working=WorkingSize(shortest_side=300)
    )
    assert drafted == [(500, 375)]  # 1/8 scale: the 12 M pixels never existed
    assert decoded.image.size == (300, 400)
    assert (decoded.width, decoded.height) == (3000, 4000)
    red = decoded.image.getpixel((280, 20))  # top-left red quadrant, turned to the top right
    assert red[0] > 180 and red[2] < 80, red


def test_transparency_and_16_bit_grey_survive_the_reduction() -> None:
    rgba = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (400, 0, 800, 600))
    palette = Image.new("P", (800, 600), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255])
    palette.paste(1, (400, 0, 800, 600))
    working = WorkingSize(shortest_side=60)

    def reduced(image: Image.Image, **options) -> Image.Image:
        data = encode(image, "PNG", **options)
        return decode_reduced(data, "x.png", max_pixels=BIG, working=working).image

    on_white = reduced(rgba)
    assert on_white.size == (80, 60)
    assert on_white.getpixel((5, 30)) == (255, 255, 255)
    assert on_white.getpixel((75, 30)) == (255, 0, 0)
    keyed = reduced(palette, transparency=0)
    assert keyed.getpixel((5, 30)) == (255, 255, 255) and keyed.getpixel((75, 30)) == (0, 0, 255)
    grey = reduced(Image.new("I;16", (800, 600), 32768))
    assert grey.size == (80, 60) and grey.getpixel((40, 30)) == (128, 128, 128)
