"""Reading one image file: the one reader behind ``folder:``, ``textfolder:`` and ``predict``.

Pillow does the decoding.  Its decompression-bomb check refuses, from the header and
before any pixel is decoded, an image that claims far more pixels than this tool's
images have; that and any unreadable file become one ``DataError`` line
(``image_error``).  Grey images stay one channel, everything else becomes RGB.
16-bit grey images (scans, microscopy: Pillow's modes ``I;16`` and ``I``) are scaled
from their 0..65535 range to 0..255, not clipped (Pillow's own conversion to 8 bits
clips, and turns almost every pixel white).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "GREY_MODES", "image_error", "read_image"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
GREY_MODES = ("L", "1", "I;16", "I", "LA")  # Pillow modes read as one grey channel
WIDE_MAX = 65535  # white in a 16-bit image


def image_error(path: Path, e: Exception, fix: str = "delete or replace the file") -> DataError:
    """The one-line error for an image file PIL would not read (or should not); ``fix``
    says what to do about a file that is not an image."""
    from PIL import Image

    if isinstance(e, Image.DecompressionBombError):  # checked from the header, before any pixel is decoded
        return DataError(
            f"{path}: its header claims more pixels than an image of this tool's sizes can have "
            "(a decompression bomb); it was not decoded; delete it or replace it with the real image"
        )
    return DataError(f"{path}: not a readable image ({type(e).__name__}); {fix}")


def read_image(
    path: Path, mode: str | None = None, size: tuple[int, int] | None = None, fix: str = "delete or replace the file"
) -> np.ndarray:
    """One image as (H, W, C) uint8: C is 1 for grey, 3 for colour.

    ``mode`` ("L" or "RGB") converts to that; by default grey modes stay grey and any
    other becomes RGB.  ``size`` (height, width) resizes bilinearly when the image's
    size differs.  ``fix`` ends the error line for a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I"):  # 16-bit grey: scaled by its range, not clipped at 255
                wide = np.clip(np.asarray(im, dtype=np.float64), 0, WIDE_MAX)
                im = Image.fromarray(np.rint(wide * (255 / WIDE_MAX)).astype(np.uint8), mode="L")
            im = im.convert(mode or ("L" if im.mode in GREY_MODES else "RGB"))
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(im)
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, ValueError) as e:
        raise image_error(Path(path), e, fix) from e
    return arr[..., None] if arr.ndim == 2 else arr
