"""Concept maps in attention-output space (ConceptAttention) on joint-attention transformers."""

import numpy as np
import pytest
import torch

from workbench import trace
from workbench.capture.architectures import attention_layers
from workbench.capture.concept_maps import ConceptStream, ConceptWordError
from workbench.pipelines.random_pipelines import build_random_pipeline

from ..shapes_fixtures import tiny_shapes_pipeline, tiny_shapes_transformer

PROMPTS = ["a red cat on a sofa, high quality", "a dog in the garden"]


@pytest.fixture(scope="module", params=["sd3", "flux"])
def joint(request, tmp_path_factory):
    pipe = build_random_pipeline(request.param, tmp_path_factory.mktemp(request.param))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, **options):
    return pipe(PROMPTS, num_inference_steps=2, height=64, width=64, max_sequence_length=32, output_type="np",
                generator=torch.Generator().manual_seed(0), **options).images


def test_concept_maps_leave_the_generation_bit_identical_and_come_labelled(joint):
    plain = generate(joint)
    with trace(joint, concepts=["cat", "sky", "sofa"]) as tr:
        traced = generate(joint)
    assert np.array_equal(plain, traced)
    maps = tr.concept_maps()
    assert [layer.short for layer in maps.layers] == ["block.0", "block.1"]  # joint blocks only
    first = maps.maps[maps.layers[0].path]
    assert first.shape == (2, 3, 4, 4)  # 2 images, 3 concepts, 4x4 image tokens
    assert torch.allclose(first.sum(1), torch.ones(2, 4, 4), atol=1e-5)  # a distribution over the concepts
    assert maps.word("sky", prompt=1).shape == (64, 64)  # a concept not in the prompt
    assert tr.attention_maps().word("cat", prompt=0).shape == (64, 64)  # raw maps side by side


def test_a_concepts_raw_map_does_not_depend_on_the_other_concepts(joint):
    with trace(joint, concepts=["cat", "sky", "sofa", "dog"]) as many:
        generate(joint)
    with trace(joint, concepts=["sofa"]) as one:
        generate(joint)
    for prompt in (0, 1):
        assert torch.allclose(many.concept_maps(softmax=False).word("sofa", prompt=prompt),
                              one.concept_maps(softmax=False).word("sofa", prompt=prompt), atol=1e-5)
    assert not torch.allclose(many.concept_maps(softmax=False).word("sofa"), many.concept_maps(softmax=False).word("sky"))


def test_the_stream_advances_a_concept_as_the_block_advances_a_one_token_prompt(joint):
    """With one text token, the block's own text stream is exactly a concept's one-way pass:
    that token attends to the image keys and itself, and image keys do not depend on the text."""
    transformer = joint.transformer
    layer = next(l for l in attention_layers(transformer) if l.stream == "joint")
    block = transformer.transformer_blocks[0]
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    torch.manual_seed(1)
    image, concept, temb = torch.randn(1, 16, width), torch.randn(1, 1, width), torch.randn(1, width)
    options = {}
    if hasattr(transformer, "pos_embed") and type(transformer).__name__ == "FluxTransformer2DModel":
        grid = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij"), -1).reshape(16, 2)
        ids = torch.cat([torch.zeros(1, 3), torch.cat([torch.zeros(16, 1), grid.float()], 1)])  # text ids are zeros
        options["image_rotary_emb"] = transformer.pos_embed(ids)
    scores = []
    stream = ConceptStream(transformer, [layer], [layer], torch.zeros(1, 1), lambda: slice(None), lambda l, s: scores.append(s))
    stream.state, stream._rows = concept[0], slice(None)
    handles = stream.hooks()
    try:
        with torch.no_grad():
            text_out, image_out = block(hidden_states=image, encoder_hidden_states=concept, temb=temb, **options)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.allclose(stream.state, text_out, atol=1e-5)
    assert scores[0].shape == (1, 1, 16, 1)


def test_the_shapesworld_transformer_takes_concepts_and_a_unet_is_told_to_use_raw_maps():
    pipe = tiny_shapes_transformer()
    with trace(pipe, concepts=["circle", "square"]) as tr:
        pipe(["a red circle on a gray background"], num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert tr.concept_maps().word("square").shape == (32, 32)
    with pytest.raises(ConceptWordError, match="UNet2DConditionModel has none: read its raw cross-attention maps"):
        trace(tiny_shapes_pipeline(), concepts=["circle"])
    with pytest.raises(ValueError, match="queries='text' .* down.1.0, .* are cross-attention layers, whose text tokens have no queries"):
        trace(tiny_shapes_pipeline(), queries="text")
    assert tr.concept_maps().source == "concept outputs"


def test_bad_concept_words_are_named(tmp_path):
    pipe = tiny_shapes_transformer()
    run = lambda concepts: trace(pipe, concepts=concepts)  # noqa: E731
    with pytest.raises(ConceptWordError, match="cannot encode the concept word 'zebra'"):
        run(["circle", "zebra"])
    with pytest.raises(ConceptWordError, match="'red circle' is not one word"):
        run(["red circle"])
    with pytest.raises(ConceptWordError, match="21 concept words are more than the model's text length of 20 tokens"):
        run(["circle"] * 21)
    with pytest.raises(ConceptWordError, match="the selected layers have none; select some of: block.0, block.1"):
        trace(build_random_pipeline("flux", tmp_path), layers="single", concepts=["cat"])


def test_a_flux_folder_runs_a_probe_of_concept_maps_and_bad_concepts_are_refused_before_writing(tmp_path):
    from workbench.pipelines.random_pipelines import save_random_pipeline
    from workbench.probes import ProbeError, parse_probe, run_probe

    folder = save_random_pipeline("flux", tmp_path)
    head = f'name = "flux"\n[model]\npipeline = "{folder}"\nsteps = 2\nheight = 64\nwidth = 64\n[inputs]\nprompts = ["a dog in the garden"]\n'
    run = run_probe(parse_probe(head + '[attention]\nconcepts = ["dog", "sky"]\nmaps = "output"\n', "p.toml"), tmp_path / "run")
    page = (run / "dashboard.html").read_text()
    assert "<h2>Concept maps (attention-output space)</h2>" in page and "a dog in the garden" in page
    with pytest.raises(ProbeError, match=r"\[attention\] concept 'blue sky' is not one word"):
        run_probe(parse_probe(head + '[attention]\nconcepts = ["blue sky"]\n', "p.toml"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ProbeError, match='maps = "output" scores concept maps; name them with concepts'):
        parse_probe(head + '[attention]\nmaps = "output"\n', "p.toml")


def test_concept_maps_per_step_average_to_the_streamed_ones():
    pipe = tiny_shapes_transformer()
    run = lambda **options: pipe(["a red circle on a gray background"], num_inference_steps=3,  # noqa: E731
                                 generator=torch.Generator().manual_seed(0), **options)
    with trace(pipe, concepts=["circle", "red"], per_step=True) as stepped:
        run()
    with trace(pipe, concepts=["circle", "red"]) as streamed:
        run()
    per_step = stepped.concept_maps(softmax=False)
    layer = per_step.layers[0].path
    assert per_step.maps[layer].shape == (1, 3, 2, 16, 16)  # image, step, concept, y, x
    assert torch.allclose(per_step.maps[layer].mean(1), streamed.concept_maps(softmax=False).maps[layer], atol=1e-5)
