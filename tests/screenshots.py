"""Screenshot helper shared by the browser tests (a test helper, not a test module)."""

from __future__ import annotations

from pathlib import Path


def shrink(path: Path) -> None:
    """Rewrite a PNG as a 256-colour palette PNG: about a third of the bytes for flat UI and report colours."""
    try:
        from PIL import Image  # Pillow comes with matplotlib
    except ImportError:  # pragma: no cover
        return
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
