"""Checking and decoding uploaded images with Pillow.

Two stages on purpose: the API *inspects* each upload (format and header,
within the pixel limit, no full decode) before it accepts a job, and the
worker *decodes* it fully later. A file that passes inspection but fails to
decode (truncated data) fails alone, as a per-image error.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from PIL import Image, ImageOps, UnidentifiedImageError

from clipcore.errors import InvalidImage, InvalidInput

MAX_FILENAME_LENGTH = 255


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def check_filename(filename: str | None, index: int, field: str = "images") -> str:
    """Return the client's filename if it is a plain name; refuse path parts.

    A name is optional (``image-{index}`` stands in); ``../../etc/passwd`` is refused
    so that nobody downstream ever treats it as a path.
    """
    if not filename:
        return f"image-{index}"
    if (
        "\x00" in filename
        or PurePosixPath(filename).name != filename
        or PureWindowsPath(filename).name != filename
        or filename in {".", ".."}
    ):
        raise InvalidInput.for_field(
            f"{field}[{index}]",
            f"filename {filename!r} must be a plain file name without path parts",
        )
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidInput.for_field(
            f"{field}[{index}]", f"filename is longer than {MAX_FILENAME_LENGTH} characters"
        )
    return filename


def inspect_image(
    data: bytes, filename: str, *, max_pixels: int, field: str = "images"
) -> ImageInfo:
    """Read only the header: a known format, a readable size, within ``max_pixels``.

    Raises :class:`InvalidImage` naming the file (and the request ``field``) otherwise.
    """

    def invalid(message: str) -> InvalidImage:
        return InvalidImage(filename, message, field=field)

    if not data:
        raise invalid("the file is empty")
    # Pillow's own bomb check then agrees with ours (it warns past the limit, fails at 2x).
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Just over the limit Pillow only warns; the check below gives the better message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                info = ImageInfo(image.format or "", image.width, image.height)
    except Image.DecompressionBombError:
        raise invalid(
            f"the image has more than {max_pixels} pixels (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise invalid("not an image in a format clipq can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise invalid(f"the image header cannot be read ({exc})") from None
    if not info.format or info.width < 1 or info.height < 1:
        raise invalid("not an image in a format clipq can read")
    if info.width * info.height > max_pixels:
        raise invalid(f"{info.width}×{info.height} pixels is over the limit of {max_pixels} pixels")
    return info


def decode_image(data: bytes, filename: str, *, max_pixels: int) -> Image.Image:
    """Fully decode an upload into an RGB image, EXIF orientation applied.

    Transparent pixels are composited onto white and 16-bit greyscale is scaled
    down, so that every input reaches the model as the picture a person sees.
    """
    inspect_image(data, filename, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(filename, f"the image data cannot be decoded ({exc})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16-bit greyscale: Pillow's plain convert clips everything over 255 to white.
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")
