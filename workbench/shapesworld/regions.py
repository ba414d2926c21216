"""ShapesWorld as a region source for the attention analysis: each caption's objects are found
in the generated image by their colour (palette segmentation), the rest is background."""

from __future__ import annotations

from collections import defaultdict
import numpy as np

from workbench.analyses.regions import Regions
from workbench.capture import AttentionMaps

from .captions import CaptionError, parse_caption, word_roles
from .segmentation import BACKGROUND_LABEL, object_masks_by_color, segment_by_palette


def caption_regions(prompt: int, maps: AttentionMaps, image: np.ndarray) -> Regions | None:
    """The drawn objects (None where an object's colour was not drawn) and the background of
    a ShapesWorld caption's generated image; each size, colour and shape word names its
    object's region, the background word the background. None for any other prompt."""
    text = maps.tokens.texts[prompt]
    try:
        factors = parse_caption(text)
    except CaptionError:
        return None
    labels = segment_by_palette(image)
    drawn = object_masks_by_color(labels, [o.color for o in factors.objects])
    names = [f"object {i + 1} ({o.color} {o.shape})" for i, o in enumerate(factors.objects)]
    masks: dict[str, np.ndarray | None] = dict(zip(names, drawn))
    masks["background"] = labels == BACKGROUND_LABEL
    words, seen = {}, defaultdict(int)
    for named in filter(None, word_roles(text)):
        words[(named.word, seen[named.word])] = (named.role, "background" if named.obj is None else names[named.obj])
        seen[named.word] += 1
    return Regions(masks, words)
