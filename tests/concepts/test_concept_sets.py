import pytest
import torch

from workbench.concepts.concept_sets import ConceptSet, concept_activations
from workbench.shapesworld.concepts import from_query, parse_query, random_sets


def test_factor_queries_draw_matching_scenes():
    red = from_query("red", "color=red", 6, seed=1)
    assert len(red) == 6 and all(" red " in p for p in red.prompts)
    assert red.images.shape == (6, 3, 32, 32)
    both = from_query("red circles", "color=red,shape=circle", 3)
    assert all("red circle" in p for p in both.prompts)
    sets = random_sets(3, 5, seed=0)
    assert [s.name for s in sets] == ["random0", "random1", "random2"]
    assert sets[0].fingerprint() != sets[1].fingerprint()


def test_bad_queries_and_small_sets_are_named():
    with pytest.raises(ValueError, match="color='teal' is not a ShapesWorld value; color is one of red"):
        parse_query("color=teal")
    with pytest.raises(ValueError, match="expected factor=value"):
        parse_query("texture=rough")
    with pytest.raises(ValueError, match="has 1 example"):
        ConceptSet("tiny", prompts=("a",))


def test_activations_are_cached_and_reused(tiny_shapes, tmp_path):
    red = from_query("red", "color=red", 4)
    first = concept_activations(tiny_shapes, red, "unet.mid_block", cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert first.shape == (4, tiny_shapes.unet.config.block_out_channels[-1]) and len(files) == 1
    again = concept_activations(tiny_shapes, red, "unet.mid_block", cache_dir=tmp_path)
    assert torch.equal(first, again) and list(tmp_path.iterdir()) == files
    other_t = concept_activations(tiny_shapes, red, "unet.mid_block", timestep=100, cache_dir=tmp_path)
    assert not torch.equal(first, other_t) and len(list(tmp_path.iterdir())) == 2
    text = concept_activations(tiny_shapes, red, "text_encoder.encoder.layers.1")
    assert text.shape == (4, 16)
    files[0].write_bytes(b"damaged")  # a damaged cache file is recomputed and rewritten, never an error
    assert torch.equal(concept_activations(tiny_shapes, red, "unet.mid_block", cache_dir=tmp_path), first)
    assert files[0].read_bytes() != b"damaged"


def test_text_concepts_reach_the_unet_through_their_conditioning_alone(tiny_shapes):
    red = ConceptSet("red", prompts=("a large red circle on a gray background",) * 2)
    blue = ConceptSet("blue", prompts=("a large blue circle on a gray background",) * 2)
    a, b = (concept_activations(tiny_shapes, c, "unet.mid_block") for c in (red, blue))
    again = concept_activations(tiny_shapes, ConceptSet("red again", prompts=red.prompts), "unet.mid_block")
    assert torch.equal(a, again) and not torch.allclose(a, b, atol=1e-3)  # the same seeded noise: only the prompt differs
    images = ConceptSet("images", images=from_query("x", "", 3, seed=1).images)
    assert concept_activations(tiny_shapes, images, "unet.mid_block").shape == (3, a.shape[1])  # images without prompts: the empty prompt
    with pytest.raises(ValueError, match="has no prompts, which the text-encoder module"):
        concept_activations(tiny_shapes, images, "text_encoder.encoder")
    with pytest.raises(ValueError, match="unet has no child 'mid'"):
        concept_activations(tiny_shapes, red, "unet.mid")


def test_run_tcav_end_to_end_on_a_tiny_model(tiny_shapes):
    from workbench.concepts.run import run_tcav
    from workbench.shapesworld.models.classifier import ShapesClassifier

    from workbench.concepts import classifier_logit

    report = run_tcav(
        tiny_shapes, classifier_logit(ShapesClassifier().eval(), "color", "red"),
        inputs=from_query("inputs", "color=red", 6, seed=5),
        concepts=[from_query("red", "color=red", 8, seed=1), from_query("blue", "color=blue", 8, seed=2)],
        random=random_sets(3, 8, seed=3),
        layers=["unet.mid_block", "unet.up_blocks.1"],
    )
    frame = report.to_frame()
    red = report.result("red", "unet.up_blocks.1")
    assert red.cavs.shape == (3, tiny_shapes.unet.config.block_out_channels[1]) and frame.iloc[1].p_value == red.p_value
    with pytest.raises(KeyError, match="no result for 'green'"):
        report.result("green", "unet.mid_block")
    assert len(frame) == 4 and set(frame.layer) == {"unet.mid_block", "unet.up_blocks.1"}
    assert frame.score.between(0, 1).all() and frame.p_value.between(0, 1).all()
    with pytest.raises(ValueError, match="are embeddings; the explained inputs need images"):
        run_tcav(tiny_shapes, lambda x: x.mean((1, 2, 3)), ConceptSet("e", embeddings=torch.zeros(2, 3)), random_sets(1, 4), random_sets(2, 4), ["unet.mid_block"])
    with pytest.raises(ValueError, match="name at least one concept set"):
        run_tcav(tiny_shapes, lambda x: x.mean((1, 2, 3)), random_sets(1, 4)[0], [], random_sets(2, 4), ["unet.mid_block"])


def test_many_concepts_and_modules_in_shared_passes_that_stop_early(tiny_shapes, tmp_path):
    from workbench.concepts.concept_sets import layer_activations

    sets = [from_query("red", "color=red", 5, seed=1)] + random_sets(2, 4, seed=3)
    calls = {"unet": 0, "last": 0}
    hooks = [tiny_shapes.unet.register_forward_pre_hook(lambda m, i: calls.__setitem__("unet", calls["unet"] + 1)),
             tiny_shapes.unet.up_blocks[-1].register_forward_hook(lambda m, i, o: calls.__setitem__("last", calls["last"] + 1))]
    try:
        found = layer_activations(tiny_shapes, sets, ["unet.mid_block", "unet.up_blocks.1"], batch_size=8, cache_dir=tmp_path)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"unet": 2, "last": 0}  # two passes (8 and 5 rows), each stopped after up_blocks.1
    for concept in sets:
        for module in ("unet.mid_block", "unet.up_blocks.1"):
            alone = concept_activations(tiny_shapes, concept, module)  # its own pass, no cache
            assert torch.allclose(found[concept.name][module], alone, atol=1e-5)
    assert len(list(tmp_path.iterdir())) == 6
    with pytest.raises(ValueError, match="concept names must be unique"):
        layer_activations(tiny_shapes, random_sets(2, 3) + random_sets(1, 3, seed=9), ["unet.mid_block"])
    assert [s.name for s in random_sets(2, 3, prefix="posing")] == ["posing0", "posing1"]
