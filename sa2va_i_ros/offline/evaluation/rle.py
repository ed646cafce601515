"""COCO run-length encoded masks, decoded with numpy as pycocotools' ``mask.decode`` does.

An RLE is ``{"size": [h, w], "counts": ...}``: run lengths alternating 0 and 1,
starting with 0, over the pixels in column-major order. ``counts`` is a list of
ints (uncompressed) or the compressed string of pycocotools' ``rleToString``
(MeViS' ``mask_dict.json`` stores those): 5 bits per character with a
continuation bit, sign-extended, and from the fourth count on each one is stored
as the difference to the count two before it.
"""

from __future__ import annotations

import numpy as np


class RLEError(ValueError):
    """The object is not a well-formed COCO RLE."""


def decode_rle(rle) -> np.ndarray:
    """Bool (h, w) mask of a COCO RLE (compressed string/bytes or uncompressed list counts)."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RLEError(f"not a COCO RLE ({type(exc).__name__}: {exc})") from exc
    if isinstance(counts, (str, bytes)):
        counts = counts_from_string(counts)
    try:
        runs = np.asarray(counts, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise RLEError(f"RLE counts are not integers ({exc})") from exc
    if runs.ndim != 1 or (runs < 0).any():
        raise RLEError("RLE counts must be a flat list of non-negative integers")
    if int(runs.sum()) != h * w:
        raise RLEError(f"RLE counts cover {int(runs.sum())} pixels, its size {h}x{w} has {h * w}")
    values = np.zeros(len(runs), bool)
    values[1::2] = True
    return np.ascontiguousarray(np.repeat(values, runs).reshape(w, h).T)


def counts_from_string(text: str | bytes) -> list[int]:
    """Run lengths of a compressed RLE string (pycocotools' ``rleFrString``)."""
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise RLEError("compressed RLE string ends inside a count")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise RLEError(f"byte {data[p]!r} at {p} is not a compressed RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
