import numpy as np
import pytest
import torch

from workbench.capture import AttentionLayer, AttentionMaps, PromptTokens, WordSpan, trace
from workbench.capture.localisation import cluster_self_attention, unsupervised_masks


def planted_maps() -> tuple[AttentionMaps, np.ndarray]:
    """4x4 image: the left half is one region, the right half another; the word "dog" attends
    left, the end token right."""
    region = np.zeros((4, 4), bool)
    region[:, :2] = True
    flat = region.ravel()
    self_attention = np.where(flat[:, None] == flat[None, :], 1.0, 0.0)  # (queries, keys)
    self_attention /= self_attention.sum(1, keepdims=True)
    self_maps = torch.tensor(self_attention.T, dtype=torch.float32).reshape(1, 16, 4, 4)  # (prompt, keys, y, x)
    cross = torch.full((1, 4, 4, 4), 0.1)
    cross[0, 2] = torch.tensor(region, dtype=torch.float32)  # slot 2 = "dog"
    cross[0, 3] = torch.tensor(~region, dtype=torch.float32)  # slot 3 = end token
    maps = AttentionMaps(
        maps={"self": self_maps, "cross": cross},
        layers=[AttentionLayer("self", "down.1.0", "self"), AttentionLayer("cross", "down.1.0", "cross")],
        tokens=PromptTokens(["a dog"], [["<s>", "a", "dog", "<e>"]], [[WordSpan("a", 0, (1,)), WordSpan("dog", 0, (2,))]]),
        image_size=(8, 8), steps=[0], timesteps=[999.0], per_step=False, heads_kept=False, guidance="cond",
    )
    return maps, region


def test_planted_regions_are_found_and_the_salient_one_kept():
    maps, region = planted_maps()
    found = unsupervised_masks(maps, n_clusters=2, size=(4, 4))
    assert len(found.salient) == 1
    assert np.array_equal(found.foreground(), region)
    assert found.labels.shape == (4, 4)
    assert maps.end_token(0) == 3
    upsampled = unsupervised_masks(maps, n_clusters=2)
    assert upsampled.foreground().shape == (8, 8) and upsampled.foreground().sum() == 32


def test_saliency_from_the_end_token_keeps_what_it_attends():
    maps, region = planted_maps()
    found = unsupervised_masks(maps, n_clusters=2, size=(4, 4), saliency="end")
    assert np.array_equal(found.foreground(), ~region)
    assert sorted(found.saliency) == [0.0, 1.0]
    # one clustering, scored by both saliencies
    clusters = cluster_self_attention(maps, n_clusters=2)
    assert clusters.shape == (4, 4)
    by_words = unsupervised_masks(maps, size=(4, 4), clusters=clusters)
    by_end = unsupervised_masks(maps, size=(4, 4), saliency="end", clusters=clusters)
    assert np.array_equal(by_words.foreground(), region) and np.array_equal(by_end.foreground(), ~region)
    with pytest.raises(ValueError, match="saliency"):
        unsupervised_masks(maps, n_clusters=2, saliency="start")
    assert maps.word_slots(0) == [1, 2]
    maps.tokens.words[0] = []  # an empty prompt: no words to read saliency from
    with pytest.raises(ValueError, match="no words"):
        unsupervised_masks(maps, n_clusters=2)


def test_needs_self_attention_and_a_sane_k(tiny_shapes):
    maps, _ = planted_maps()
    with pytest.raises(ValueError, match="n_clusters"):
        unsupervised_masks(maps, n_clusters=1)
    with trace(tiny_shapes) as tr:
        tiny_shapes(["a large red circle on a gray background"], num_inference_steps=1, output_type="np")
    with pytest.raises(ValueError, match="self_layers"):
        unsupervised_masks(tr.attention_maps())


def test_runs_on_a_traced_pipeline(tiny_shapes):
    with trace(tiny_shapes, self_layers="all") as tr:
        tiny_shapes(["a large red circle on a gray background"], num_inference_steps=2, output_type="np")
    maps = tr.attention_maps()
    attention = maps.self_attention(0, layers="down.1")
    assert attention.shape == (256, 256)
    assert torch.allclose(attention.sum(1), torch.ones(256), atol=1e-5)
    found = unsupervised_masks(maps, n_clusters=3)
    assert found.labels.shape == (32, 32) and set(np.unique(found.labels)) <= {0, 1, 2}
    with pytest.raises(ValueError, match="different resolutions"):
        maps.self_attention(0)
