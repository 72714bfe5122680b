"""The bench's inputs: synthetic photos made with Pillow and the questions asked about them."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

FIRST_QUESTION = "What is in this photo? Describe it briefly."
FOLLOW_UP = "What colour is the large circle?"
# A fixed answer text for comparing next-token logits of two paths on identical inputs.
REFERENCE_ANSWER = (
    "The photo shows a red circle and a blue square on a light background, with a line of "
    "black text near the bottom that reads INVOICE TOTAL 42 EUR."
)


def photo(width: int, height: int) -> Image.Image:
    """A photo-like test image: a colour gradient, shapes and a line of text."""
    small = Image.new("RGB", (64, 48))
    for y in range(48):
        for x in range(64):
            small.putpixel((x, y), (x * 4, y * 5, 160))
    image = small.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 10, height // 8, width // 2, height * 5 // 8), fill=(210, 30, 30))
    draw.rectangle((width * 3 // 5, height // 5, width * 9 // 10, height // 2), fill=(20, 40, 200))
    draw.text((width // 10, height * 3 // 4), "INVOICE TOTAL 42 EUR", fill=(0, 0, 0))
    return image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


# The 64-token answer both paths are timed on: fed token by token (the same work per token as a
# chosen answer) so that, as with a real model, the answer's text tokenizes back to the same ids
# and the follow-up can reuse the whole cached conversation. Random weights choose arbitrary
# tokens, whose text often tokenizes differently and would make the follow-up a lottery.
SCRIPTED_ANSWER = (
    "The photo shows a large red circle on the left and a blue square on the right, set against "
    "a smooth gradient that runs from dark purple in the top left corner to a pale pink in the "
    "bottom right. Near the bottom there is a single line of small black text that reads "
    "INVOICE TOTAL 42 EUR. There are no people, animals or other objects in the picture, and the "
    "shapes have sharp, clean edges, so it looks like a simple test image rather than a photograph "
    "taken with a camera."
)
