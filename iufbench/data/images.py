"""The only pixel decoders: every dataset reaches the model as uint8 RGB and binary masks.

One decoder for all readers means 1-bit scans, 16-bit grayscale, palette and RGBA files are
normalised the same way everywhere, and a mask that does not fit its image fails loudly
instead of shifting the pixel metrics.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from iufbench.data.types import TestImage
from iufbench.errors import DataError

# Modes wider than 8 bits; "I" counts as 16-bit (older Pillow opens 16-bit PNGs as "I").
_WIDE_INT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def _unreadable(what: str, path: Path, e: Exception) -> DataError:
    reason = "no such file" if isinstance(e, FileNotFoundError) else str(e) or type(e).__name__
    return DataError(f"cannot read {what} {path}: {reason}; replace or delete the file")


@contextmanager
def _opened(path: Path, what: str) -> Iterator[Image.Image]:
    """Open and fully decode `path`; any failure becomes a DataError that names the file.

    PIL's plugins raise many exception types for corrupt or truncated files (OSError,
    SyntaxError, struct.error, zlib.error, ...), so everything raised while decoding is caught.
    """
    try:
        im = Image.open(path)
    except Exception as e:  # noqa: BLE001 - see docstring
        raise _unreadable(what, path, e) from e
    with im:
        try:
            im.load()
        except Exception as e:  # noqa: BLE001 - see docstring
            raise _unreadable(what, path, e) from e
        yield im


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB; 16-bit gray is scaled (PIL's own conversion would clip it to 255)."""
    if im.mode in _WIDE_INT_MODES:
        wide = np.asarray(im).astype(np.float64).clip(0, 65535)
        return Image.fromarray(np.round(wide / 257.0).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        raise DataError(
            f"cannot read image {path}: 32-bit float pixels have no defined range; "
            "save it as 8- or 16-bit"
        )
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # applies palette transparency without PIL's warning
    return im.convert("RGB")


def _decode(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB at `size` = (H, W) plus the original (h, w), from one read of the file."""
    with _opened(path, "image") as im:
        hw = (im.height, im.width)
        rgb = _to_rgb(im, path)
    resized = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.uint8), hw


def load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 HxWx3 RGB resized (bilinear) to `size` = (H, W)."""
    return _decode(path, size)[0]


def load_mask(
    path: Path | None, size: tuple[int, int], expected_hw: tuple[int, int]
) -> np.ndarray:
    """bool HxW at `size`; None (a good image) is all False.

    Any value > 0 is foreground (MVTec 3D-AD stores class ids like 254). The size check
    against the image's original `expected_hw` = (h, w) catches masks from another image
    or resized separately; nearest resizing keeps the result binary.
    """
    if path is None:
        return np.zeros(size, dtype=bool)
    with _opened(path, "mask") as im:
        if (im.height, im.width) != tuple(expected_hw):
            h, w = expected_hw
            raise DataError(
                f"mask {path} is {im.width}x{im.height} but its image is {w}x{h}; "
                "replace it with the mask made for that image"
            )
        wide = im.mode in _WIDE_INT_MODES or im.mode == "F"
        fg = np.asarray(im) > 0 if wide else np.asarray(im.convert("L")) > 0
    binary = Image.fromarray(fg.astype(np.uint8) * 255, "L")
    return np.asarray(binary.resize((size[1], size[0]), Image.Resampling.NEAREST)) > 0


def image_hw(path: Path) -> tuple[int, int]:
    """Original (h, w), read from the header only (cheap)."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception as e:  # noqa: BLE001 - same reasons as _opened
        raise _unreadable("image", path, e) from e


def load_test_item(item: TestImage, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 HxWx3 image, bool HxW mask) at `size`, the mask checked against its image."""
    image, hw = _decode(item.path, size)
    return image, load_mask(item.mask, size, hw)
