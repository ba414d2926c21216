import pytest

from workbench.shapesworld import CaptionError, make_caption, parse_caption, sample_scenes, vocabulary


def test_captions_round_trip_to_factors():
    for scene in sample_scenes(200, seed=5):
        assert parse_caption(scene.caption) == scene.factors
        assert make_caption(parse_caption(scene.caption)) == scene.caption


def test_known_caption():
    factors = parse_caption("a small red circle and a large blue square on a striped background")
    assert [(o.size, o.color, o.shape) for o in factors.objects] == [("small", "red", "circle"), ("large", "blue", "square")]
    assert factors.background == "striped"


def test_unknown_word_names_itself_and_the_vocabulary():
    with pytest.raises(CaptionError) as info:
        parse_caption("a small teal circle on a gray background")
    message = str(info.value)
    assert "'teal'" in message
    assert all(word in message for word in vocabulary())


@pytest.mark.parametrize(
    "caption, fragment",
    [
        ("a red small circle on a gray background", "expected a size"),
        ("a small red circle on a gray", "ends where"),
        ("a small red circle on a gray background background", "extra words"),
        ("small red circle on a gray background", "expected 'a'"),
    ],
)
def test_grammar_errors_say_what_was_expected(caption, fragment):
    with pytest.raises(CaptionError, match=fragment):
        parse_caption(caption)


def test_word_roles_name_each_words_object_and_factor():
    from workbench.shapesworld import WordRole, word_roles

    roles = word_roles("a small red circle and a large red square on a striped background")
    assert roles[:5] == [None, WordRole("small", "size", 0), WordRole("red", "color", 0), WordRole("circle", "shape", 0), None]
    assert roles[6:9] == [WordRole("large", "size", 1), WordRole("red", "color", 1), WordRole("square", "shape", 1)]
    assert roles[11] == WordRole("striped", "background", None) and roles[12] is None
    with pytest.raises(CaptionError, match="unknown word 'dog'"):
        word_roles("a small red dog on a gray background")
