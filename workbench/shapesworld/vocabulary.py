"""The fixed factors of ShapesWorld and the words that name them.

Object colours are saturated and backgrounds achromatic, so a pixel's nearest palette colour
tells object from background exactly (the quality benchmark relies on this).
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 50, 200),
}

# Radius in pixels of the shape's bounding circle.
SIZES: dict[str, float] = {"small": 5.0, "large": 8.0}

# A plain background is one grey level; "striped" alternates two levels in horizontal bands.
BACKGROUNDS: dict[str, tuple[int, ...]] = {
    "gray": (128,),
    "black": (25,),
    "white": (235,),
    "striped": (70, 185),
}
STRIPE_PERIOD = 4  # pixels per band pair; bands are STRIPE_PERIOD // 2 rows high

# Words of the caption grammar that name no factor.
GRAMMAR_WORDS: tuple[str, ...] = ("a", "and", "on", "background")

FACTOR_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "size": tuple(SIZES),
    "background": tuple(BACKGROUNDS),
}


def vocabulary() -> tuple[str, ...]:
    """Every word a ShapesWorld caption can contain, in a fixed order."""
    words = list(GRAMMAR_WORDS)
    for values in FACTOR_VALUES.values():
        words.extend(values)
    return tuple(words)
