import numpy as np
import pytest

from workbench.analyses import compare_words
from workbench.models.word_encoder import WordEncoder, WordEncoderConfig
from workbench.world import sample_scenes


@pytest.fixture(scope="module")
def comparison():
    from ..shapes_fixtures import tiny_shapes_pipeline

    pipe = tiny_shapes_pipeline()
    encoder = WordEncoder(WordEncoderConfig(width=16, layers=2, heads=2, text_width=16, mapping_hidden=16, feature_layers=(2, 1, 1)))
    scenes = sample_scenes(24, seed=0, n_objects=1)
    return compare_words(pipe, encoder, scenes, steps=2, batch_size=12)


def test_every_part_of_the_comparison_has_its_shape(comparison):
    assert comparison.names == ["w0", "w1", "w2"]
    assert comparison.words.shape == (24, 3, 16) and comparison.norms.shape == (24, 3)
    assert comparison.cosine.shape == (3, 3) and np.allclose(np.diag(comparison.cosine), 1.0)
    assert comparison.object_mass.shape == (24, 3)
    assert ((comparison.object_mass >= 0) & (comparison.object_mass <= 1)).all()
    assert comparison.probes.accuracy.shape == (3, 6)
    assert comparison.probes.factors == ("shape", "color", "size", "background", "x", "y")
    assert set(comparison.nearest["query"]) == {"w0", "w1", "w2"}
    assert not set(comparison.nearest.token) & {"S*", "S*_1", "S*_2"}
    assert set(comparison.disentanglement) >= {"mig", "dci_disentanglement", "infom", "infoe", "infoc"}
    assert comparison.generated.shape == (24, 32, 32, 3)
    frame = comparison.to_frame()
    assert len(frame) == 72 and list(frame.columns) == ["image", "word", "norm", "object_mass"]


def test_bad_input_is_explained():
    from ..shapes_fixtures import tiny_shapes_pipeline

    pipe, encoder = tiny_shapes_pipeline(), WordEncoder(WordEncoderConfig(text_width=16))
    with pytest.raises(ValueError, match="must contain the placeholder"):
        compare_words(pipe, encoder, sample_scenes(24, n_objects=1), template="a photo")
    with pytest.raises(ValueError, match="at least 20 images"):
        compare_words(pipe, encoder, sample_scenes(5, n_objects=1))
    with pytest.raises(ValueError, match="one-object scenes"):
        compare_words(pipe, encoder, sample_scenes(24, n_objects=2))
