"""Characters rendered from TrueType/OpenType fonts: printed digits and letters as 28 x 28 images.

Fonts come from matplotlib's bundled set (always installed) and, optionally, the system's font folders
(on Debian, handwriting-like fonts are packaged: ``apt-get install fonts-dkg-handwriting fonts-breip fonts-bwht``).
A font that has no glyph for a character (it would print an empty box) is skipped with a warning naming it.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES = (".ttf", ".otf")


class FontError(ValueError):
    """A font cannot be read or cannot render a character."""


def bundled_fonts() -> list:
    """matplotlib's own fonts (DejaVu, STIX, Computer Modern), minus the symbol-only ones and DejaVu's "Display"
    subsets (a handful of glyphs, no digits)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    skip = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "cmmi", "LastResort",  # symbols and fallbacks, no digits
            "DejaVuSansDisplay", "DejaVuSerifDisplay")
    return sorted(p for p in folder.glob("*.ttf") if not p.name.startswith(skip))


def system_fonts(dirs: Iterable[str] = SYSTEM_FONT_DIRS) -> list:
    """Every .ttf/.otf file under the system's font folders."""
    found = set()
    for d in dirs:
        root = Path(d).expanduser()
        if root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    return sorted(found)


def find_fonts(system: bool = True) -> list:
    """matplotlib's fonts, plus the system's when `system`; a font file found twice is listed once."""
    fonts = {p.name: p for p in bundled_fonts()}
    if system:
        for p in system_fonts():
            fonts.setdefault(p.name, p)
    return sorted(fonts.values(), key=lambda p: p.name)


@lru_cache(maxsize=256)
def _font(path: str, px: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(path, px)
    except OSError as e:
        raise FontError(f"{path}: cannot read font ({e})") from None


def _ink(font, text: str, px: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("L", (3 * px, 3 * px), 0)
    ImageDraw.Draw(im).text((px, px // 2), text, font=font, fill=255)
    return np.asarray(im, dtype=np.float32) / 255


def render_char(char: str, font_path, px: int = 96) -> np.ndarray:
    """One character in one font, white on black, on a canvas larger than the glyph: (3 px, 3 px) float32.

    Raises FontError when the font lacks the glyph: when it draws nothing, or draws exactly what it draws for
    a character no font has (the "tofu" box).
    """
    if len(char) != 1:
        raise ValueError(f"render_char draws one character, got {char!r}")
    font = _font(str(font_path), px)
    a = _ink(font, char, px)
    if a.max() <= 0:
        raise FontError(f"{Path(font_path).name}: cannot render {char!r} (no glyph)")
    if np.array_equal(a, _ink(font, "\U0010fffd", px)):  # a private-use code point: the font's missing-glyph box
        raise FontError(f"{Path(font_path).name}: cannot render {char!r} (missing glyph box)")
    return a


def render_chars(chars: str, fonts: Optional[Iterable] = None, px: int = 96) -> tuple:
    """Every character in every font that can draw it -> (list of (3 px, 3 px) arrays, list of (char, font name)).

    Fonts that cannot draw a character are skipped with one warning each, naming the font.
    """
    fonts = list(find_fonts() if fonts is None else fonts)
    if not fonts:
        raise FontError("no fonts given: pass at least one font file (see find_fonts())")
    images, meta = [], []
    for f in fonts:
        missing = []
        for c in chars:
            try:
                images.append(render_char(c, f, px))
                meta.append((c, Path(f).name))
            except FontError as e:
                if "cannot read font" in str(e):
                    warnings.warn(str(e), stacklevel=2)
                    break
                missing.append(c)
        if missing:
            warnings.warn(f"font {Path(f).name} cannot render {''.join(missing)!r}; skipped those", stacklevel=2)
    return images, meta
