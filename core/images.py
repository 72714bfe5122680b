"""Checking and normalising user images before they are stored or shown to the model."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

STORED_FORMAT = "JPEG"
STORED_QUALITY = 92
# The Qwen-VL processor refuses images more elongated than 200:1; stay well inside that.
MAX_ASPECT = 100


class ImageError(ValueError):
    """A user-supplied file cannot be used as an image; the message is fit to show to the user."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    max_file_bytes: int
    max_decoded_pixels: int


@dataclass(frozen=True)
class PreparedImage:
    """An image as stored and as the model sees it: RGB, upright, within the pixel budget."""

    data: bytes
    width: int
    height: int


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > limits.max_file_bytes:
        mb = limits.max_file_bytes / 1024 / 1024
        raise ImageError(f"The image file is too large (limit {mb:.0f} MB).")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; treat that as an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            width, height = probe.size
            if width * height > limits.max_decoded_pixels:
                raise ImageError(
                    f"The image is {width}×{height} pixels, more than this bot accepts "
                    f"({limits.max_decoded_pixels / 1e6:.0f} megapixels)."
                )
            if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
                raise ImageError("The image is too long and narrow to look at; please crop it.")
            probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("The image has far too many pixels to be processed safely.") from None
    except UnidentifiedImageError:
        raise ImageError(
            "That file is not an image I can read (JPEG, PNG, WebP, GIF or BMP)."
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"The image seems damaged or truncated ({error}).") from None
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        # Transparent areas become white, as chat apps show them on a light background.
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def fit_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def prepare_image(data: bytes, limits: ImageLimits) -> PreparedImage:
    """Decode, verify, rotate upright, make RGB and downscale; raise ImageError if unusable."""
    image = _open(data, limits)
    # A broken EXIF block must not reject an otherwise fine photo.
    with contextlib.suppress(OSError, SyntaxError, ValueError):
        image = ImageOps.exif_transpose(image)
    image = _to_rgb(image)
    size = fit_within(image.width, image.height, limits.max_pixels)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format=STORED_FORMAT, quality=STORED_QUALITY)
    return PreparedImage(data=out.getvalue(), width=image.width, height=image.height)


def load_prepared(data: bytes) -> Image.Image:
    """Decode an image that ``prepare_image`` produced (trusted: it came from our storage)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")
