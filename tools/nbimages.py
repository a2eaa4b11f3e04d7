"""Smaller PNG outputs in notebooks: every figure re-encoded with a palette of at most 256 colours.

    python tools/nbimages.py NOTEBOOK ...      # rewrites each notebook in place, prints what it saved

Matplotlib writes 32-bit RGBA PNGs, which hold a UMAP scatter of 10,000 points or a grid of 100 digits in a few
hundred kB. The same pictures in an 8-bit palette are 3-4 times smaller. A figure with at most 256 distinct colours
(most line plots, and any image drawn through a 256-entry colormap without smoothing) keeps every pixel exactly;
others are quantised to the 256 colours that represent them best, a difference the eye does not see in these
figures. The series pass (tools/series.py) does this to each notebook it writes, so that the committed notebooks
stay under the size tools/nbcheck.py allows. Nothing but `image/png` outputs is touched, and an image is replaced
only when the new encoding is smaller.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import nbformat
import numpy as np
from PIL import Image

COLOURS = 256


def compact_png(data: bytes) -> bytes:
    """The PNG `data` re-encoded with a palette of at most COLOURS colours; `data` itself when that is no smaller, or
    when the image has see-through pixels (figures here are opaque; a palette would have to carry the alpha)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    if im.mode == "P":
        return data  # already a palette image
    rgba = np.asarray(im.convert("RGBA"))  # (H, W, 4)
    if (rgba[..., 3] < 255).any():
        return data
    rgb = np.ascontiguousarray(rgba[..., :3])  # (H, W, 3)
    colours, index = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)  # (K, 3), (H*W,)
    if len(colours) <= COLOURS:
        # Few enough colours: a palette of exactly those, so every pixel is kept as it was.
        out = Image.fromarray(index.reshape(rgb.shape[:2]).astype(np.uint8))  # "L" until the palette makes it "P"
        out.putpalette(colours.astype(np.uint8).flatten().tolist())
    else:
        # No dithering: it would sprinkle noise over the flat areas that make up most of a figure.
        out = Image.fromarray(rgb).quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT,
                                                       dither=Image.Dither.NONE)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    new = buf.getvalue()
    return new if len(new) < len(data) else data


def compact_notebook(nb) -> tuple[int, int]:
    """Re-encode every `image/png` output of `nb` (an nbformat notebook) in place; (bytes before, bytes after)."""
    before = after = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if not png:
                continue
            raw = base64.b64decode(png)
            new = compact_png(raw)
            before, after = before + len(raw), after + len(new)
            if new is not raw:
                out["data"]["image/png"] = base64.b64encode(new).decode("ascii")
    return before, after


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for name in argv:
        path = Path(name)
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as e:
            print(f"nbimages: cannot read {name}: {e}", file=sys.stderr)
            return 1
        before, after = compact_notebook(nb)
        if after < before:
            nbformat.write(nb, path)
        print(f"{path.name}: images {before / 1e3:,.0f} kB -> {after / 1e3:,.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
