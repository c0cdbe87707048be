from __future__ import annotations

import io

import pytest
from PIL import Image

from clipcore.errors import InvalidImage, InvalidInput
from clipcore.images import check_filename, decode_image, inspect_image
from tests.support import png_bytes, truncated_png

LIMIT = 1_000_000


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
