"""Image checks on real files of each kind: accepted and downscaled, or refused with ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from core.images import ImageError, ImageLimits, load_prepared, prepare_image
from tests.conftest import image_bytes

LIMITS = ImageLimits(max_pixels=448 * 448, max_file_bytes=5_000_000, max_decoded_pixels=50_000_000)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(side: int = 20000) -> bytes:
    """A real, fully valid 1-bit PNG of side×side pixels: tiny on disk, 400 MP decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000))
    body += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def test_phone_photo_with_exif_rotation_comes_out_upright() -> None:
    # A landscape sensor image tagged "rotate 90° clockwise", as phones save portrait photos.
    image = Image.new("RGB", (1200, 600), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 600, 600))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    prepared = prepare_image(out.getvalue(), LIMITS)
    assert prepared.height > prepared.width  # portrait after applying the orientation
    upright = load_prepared(prepared.data)
    top = upright.getpixel((upright.width // 2, 5))
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert prepared.width * prepared.height <= LIMITS.max_pixels


def test_png_with_alpha_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, 50, 80))
    out = io.BytesIO()
    image.save(out, "PNG")
    upright = load_prepared(prepare_image(out.getvalue(), LIMITS).data)
    assert upright.mode == "RGB"
    assert upright.getpixel((90, 40))[0] > 240  # transparent became white, not black
    assert upright.getpixel((10, 40))[1] > 100


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "GIF", "BMP"])
def test_other_formats_are_accepted(fmt: str) -> None:
    prepared = prepare_image(image_bytes(fmt, size=(300, 200)), LIMITS)
    assert (prepared.width, prepared.height) == (300, 200)


def test_grayscale_becomes_rgb() -> None:
    out = io.BytesIO()
    Image.new("L", (64, 64), 128).save(out, "JPEG")
    assert load_prepared(prepare_image(out.getvalue(), LIMITS).data).mode == "RGB"


def test_large_photo_is_downscaled_to_the_pixel_budget_keeping_aspect() -> None:
    prepared = prepare_image(image_bytes("JPEG", size=(4000, 3000)), LIMITS)
    assert prepared.width * prepared.height <= LIMITS.max_pixels
    assert abs(prepared.width / prepared.height - 4 / 3) < 0.01


def test_truncated_jpeg_is_refused() -> None:
    data = image_bytes("JPEG", size=(640, 480))
    with pytest.raises(ImageError, match="damaged or truncated"):
        prepare_image(data[: len(data) // 2], LIMITS)


def test_text_file_named_jpg_is_refused() -> None:
    with pytest.raises(ImageError, match="not an image"):
        prepare_image(b"Dear customer, your invoice is attached.\n" * 10, LIMITS)


def test_empty_file_is_refused() -> None:
    with pytest.raises(ImageError, match="empty"):
        prepare_image(b"", LIMITS)


@pytest.mark.parametrize("side", [20000, 8000])
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    # 20000² trips Pillow's own bomb guard; 8000² (64 MP) passes Pillow's but not ours.
    bomb = png_bomb(side)
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="pixels"):
        prepare_image(bomb, LIMITS)


def test_oversized_file_is_refused() -> None:
    small = ImageLimits(
        max_pixels=LIMITS.max_pixels,
        max_file_bytes=2048,
        max_decoded_pixels=LIMITS.max_decoded_pixels,
    )
    with pytest.raises(ImageError, match="too large"):
        prepare_image(image_bytes("PNG", size=(600, 600)), small)


def test_extreme_aspect_ratio_is_refused() -> None:
    with pytest.raises(ImageError, match="narrow"):
        prepare_image(image_bytes("PNG", size=(4000, 10)), LIMITS)
