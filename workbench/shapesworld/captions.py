"""The caption grammar: factors -> caption -> factors.

    caption := "a" object ["and" "a" object] "on" "a" background "background"
    object  := size color shape
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocabulary import BACKGROUNDS, COLORS, SHAPES, SIZES, vocabulary


class CaptionError(ValueError):
    """A caption that the ShapesWorld grammar cannot read."""


@dataclass(frozen=True)
class ObjectWords:
    """The factors a caption states about one object."""

    size: str
    color: str
    shape: str


@dataclass(frozen=True)
class CaptionFactors:
    """Everything a caption states: its objects in order of mention and the background."""

    objects: tuple[ObjectWords, ...]
    background: str


def object_phrase(obj: ObjectWords) -> str:
    return f"a {obj.size} {obj.color} {obj.shape}"


def make_caption(factors: CaptionFactors) -> str:
    """The caption for `factors`, e.g. 'a small red circle on a gray background'."""
    objects = " and ".join(object_phrase(o) for o in factors.objects)
    return f"{objects} on a {factors.background} background"


def parse_caption(caption: str) -> CaptionFactors:
    """Read a caption back into its factors.

    Raises:
        CaptionError: naming an unknown word and the vocabulary, or where the grammar breaks.
    """
    words = caption.lower().split()
    known = set(vocabulary())
    for word in words:
        if word not in known:
            raise CaptionError(
                f"unknown word {word!r} in caption {caption!r}; "
                f"the ShapesWorld vocabulary is: {', '.join(vocabulary())}"
            )
    pos = 0

    def take(expected: dict | tuple | str, what: str) -> str:
        nonlocal pos
        if pos >= len(words):
            raise CaptionError(f"caption {caption!r} ends where {what} was expected")
        word = words[pos]
        ok = word == expected if isinstance(expected, str) else word in expected
        if not ok:
            raise CaptionError(f"caption {caption!r}: expected {what} at word {pos + 1}, got {word!r}")
        pos += 1
        return word

    objects = []
    while True:
        take("a", "'a'")
        size = take(SIZES, f"a size ({', '.join(SIZES)})")
        color = take(COLORS, f"a color ({', '.join(COLORS)})")
        shape = take(SHAPES, f"a shape ({', '.join(SHAPES)})")
        objects.append(ObjectWords(size, color, shape))
        if pos < len(words) and words[pos] == "and":
            pos += 1
            continue
        break
    take("on", "'on'")
    take("a", "'a'")
    background = take(BACKGROUNDS, f"a background ({', '.join(BACKGROUNDS)})")
    take("background", "'background'")
    if pos != len(words):
        raise CaptionError(f"caption {caption!r} has extra words after 'background': {words[pos:]}")
    return CaptionFactors(tuple(objects), background)


@dataclass(frozen=True)
class WordRole:
    """What one caption word names: a factor of an object (its index in mention order) or the
    background (obj None)."""

    word: str
    role: str  # "size", "color", "shape" or "background"
    obj: int | None


def word_roles(caption: str) -> list[WordRole | None]:
    """Each word of a caption, in order, with what it names (None for grammar words).

    Raises:
        CaptionError: as `parse_caption`.
    """
    parse_caption(caption)  # the grammar holds, so each object's words follow its "a"
    factor_of = {w: "size" for w in SIZES} | {w: "color" for w in COLORS} | {w: "shape" for w in SHAPES}
    roles: list[WordRole | None] = []
    obj = 0
    for word in caption.lower().split():
        obj += word == "and"
        if word in BACKGROUNDS:
            roles.append(WordRole(word, "background", None))
        elif word in factor_of:
            roles.append(WordRole(word, factor_of[word], obj))
        else:
            roles.append(None)
    return roles
