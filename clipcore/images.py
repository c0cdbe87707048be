"""Checking and decoding uploaded images with Pillow.

Two stages on purpose: the API *inspects* each upload (format and header,
within the pixel limit, no full decode) before it accepts a job, and the
worker *decodes* it fully later. A file that passes inspection but fails to
decode (truncated data) fails alone, as a per-image error.

Only the formats in :data:`ACCEPTED_FORMATS` are opened, at both stages: Pillow is
told which plugins it may try, so the others (EPS, which runs Ghostscript, among
them) never see an upload's bytes.

Decoding can reduce a picture to a :class:`WorkingSize` right away, so that a
worker holds a few hundred thousand pixels per image, not the 40 million a small
PNG of flat colour can unpack to.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from PIL import Image, ImageOps, UnidentifiedImageError

from clipcore.errors import InvalidImage, InvalidInput

MAX_FILENAME_LENGTH = 255
# Working-size pixels a batch may hold decoded at once (CLIPQ_MAX_BATCH_PIXELS).
DEFAULT_BATCH_PIXELS = 16_000_000

# Pillow's plugins that may open an upload. MPO, the multi-picture JPEG many phone cameras
# write, is opened by the JPEG plugin (it has none of its own) and reports format "MPO".
OPENED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ACCEPTED_FORMATS = frozenset({*OPENED_FORMATS, "MPO"})
ACCEPTED_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

# Image formats people send that clipq refuses, known by their first bytes so that the
# refusal can name them without any of Pillow's plugins reading the file.
_REFUSED_SIGNATURES = (
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),  # DOS EPS binary header
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),  # a bare codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
)
# ISO base media files (bytes 4-8 "ftyp") are images by their brand; MP4 video is not named.
_ISO_BRANDS = {
    **dict.fromkeys([b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1"], "HEIC"),
    **dict.fromkeys([b"avif", b"avis"], "AVIF"),
}

# Modes that Pillow resamples as they are (with alpha, premultiplied).
_RESAMPLED_MODES = frozenset({"RGB", "L", "RGBA", "LA"})


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class WorkingSize:
    """The least of a picture that its consumer needs; a decoded picture is cut down to it.

    ``shortest_side``: a picture whose shorter side is longer is reduced until it is this
    long. ``longest_side``: one whose longer side is longer is reduced until it is this
    long (the stronger bound wins). ``max_aspect``: of a picture longer than this, only the
    centre of that aspect ratio is kept (for a consumer that reads only the centre). A
    picture within all three is left exactly as it is.
    """

    shortest_side: int | None = None
    longest_side: int | None = None
    max_aspect: float | None = None

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The centre kept of a ``width`` × ``height`` picture, or ``None``: all of it."""
        if self.max_aspect is None:
            return None
        if width > height * self.max_aspect:
            keep = max(1, round(height * self.max_aspect))
            left = (width - keep) // 2
            return left, 0, left + keep, height
        if height > width * self.max_aspect:
            keep = max(1, round(width * self.max_aspect))
            top = (height - keep) // 2
            return 0, top, width, top + keep
        return None

    def scale(self, width: int, height: int) -> float:
        """The factor (at most 1) that brings a ``width`` × ``height`` picture down to size."""
        factor = 1.0
        if self.shortest_side is not None:
            factor = min(factor, self.shortest_side / min(width, height))
        if self.longest_side is not None:
            factor = min(factor, self.longest_side / max(width, height))
        return factor

    def reduce(self, image: Image.Image) -> Image.Image:
        """``image`` cropped and resized to the working size; ``image`` itself if within it."""
        box = self.crop_box(*image.size)
        if box is not None:
            image = image.crop(box)
        factor = self.scale(*image.size)
        if factor >= 1:
            return image
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        # reducing_gap: a fast integer box reduction first, then Lanczos over the last
        # factor of 3, which looks as good as Lanczos all the way at a fraction of the time.
        return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded for a consumer: the picture at working size, and its full size.

    ``width`` and ``height`` are the full picture's, as a person sees it (EXIF orientation
    applied), so that coordinates in ``image`` can be given back in the upload's pixels.
    """

    image: Image.Image  # RGB
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
    """Read only the header: an accepted format, a readable size, within ``max_pixels``.

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
            with Image.open(io.BytesIO(data), formats=OPENED_FORMATS) as image:
                info = ImageInfo(image.format or "", image.width, image.height)
    except Image.DecompressionBombError:
        raise invalid(
            f"the image has more than {max_pixels} pixels (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        refused = _refused_format(data[:16])
        if refused:
            raise invalid(f"{refused} images are not accepted; send {ACCEPTED_NAMES}") from None
        raise invalid(f"not an image in a format clipq can read ({ACCEPTED_NAMES})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise invalid(f"the image header cannot be read ({exc})") from None
    if info.format not in ACCEPTED_FORMATS or info.width < 1 or info.height < 1:
        raise invalid(f"not an image in a format clipq can read ({ACCEPTED_NAMES})")
    if info.width * info.height > max_pixels:
        raise invalid(f"{info.width}×{info.height} pixels is over the limit of {max_pixels} pixels")
    return info


def _refused_format(prefix: bytes) -> str | None:
    """The name of a format clipq refuses that these first bytes announce, if one does."""
    for signature, name in _REFUSED_SIGNATURES:
        if prefix.startswith(signature):
            return name
    if prefix[4:8] == b"ftyp":
        return _ISO_BRANDS.get(prefix[8:12])
    return None


def decode_image(data: bytes, filename: str, *, max_pixels: int) -> Image.Image:
    """Fully decode an upload into an RGB image, EXIF orientation applied.

    Transparent pixels are composited onto white and 16-bit greyscale is scaled
    down, so that every input reaches the model as the picture a person sees.
    """
    return decode_reduced(data, filename, max_pixels=max_pixels).image


def decode_reduced(
    data: bytes, filename: str, *, max_pixels: int, working: WorkingSize | None = None
) -> DecodedImage:
    """Decode an upload as :func:`decode_image` does, cut down to ``working`` as it is decoded.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale where that still covers the working size
    (libjpeg scales in the DCT, for a fraction of the memory and time); any other picture
    is decoded whole and reduced before this returns, so only one full-size picture is
    ever held. One already within ``working`` comes back exactly as :func:`decode_image`
    gives it.
    """
    info = inspect_image(data, filename, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=OPENED_FORMATS)
            if working is not None and image.format in _JPEG_FORMATS:
                _draft(image, working)
            image.load()
            stored = image.size
            ImageOps.exif_transpose(image, in_place=True)
            turned = image.size != stored  # 90° turns swap the full picture's sides too
            if working is not None:
                image = working.reduce(_resampleable(image))
            image = _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(filename, f"the image data cannot be decoded ({exc})") from None
    width, height = (info.height, info.width) if turned else (info.width, info.height)
    return DecodedImage(image, width, height)


def _draft(image: Image.Image, working: WorkingSize) -> None:
    """Ask libjpeg for the smallest power-of-two scale that still covers the working size."""
    box = working.crop_box(*image.size)
    kept = (box[2] - box[0], box[3] - box[1]) if box else image.size
    factor = working.scale(*kept)
    if factor < 1:
        image.draft(None, (math.ceil(image.width * factor), math.ceil(image.height * factor)))


def _resampleable(image: Image.Image) -> Image.Image:
    """``image`` in a mode Pillow resamples faithfully: a palette is resampled as nearest
    neighbour and 16-bit grey not at all. RGBA (resampled premultiplied) keeps transparency
    for :func:`_to_rgb` to composite on white, which then costs working-size pixels only."""
    if image.mode in _RESAMPLED_MODES:
        return image
    if image.mode in {"P", "PA"}:
        return image.convert("RGBA")
    return _to_rgb(image)


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
