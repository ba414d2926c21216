import pytest
import torch

from workbench.capture import trace
from workbench.capture.activations import first_tensor, pool_tensor

PROMPTS = ["a large red circle on a gray background", "a small blue square on a striped background"]


def run(pipe, steps=3, **kwargs):
    return pipe(PROMPTS, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np", **kwargs).images


def test_unet_and_text_encoder_activations_are_recorded_per_call(tiny_shapes):
    names = ["unet.mid_block", "text_encoder.encoder.layers.1"]
    with trace(tiny_shapes, layers=None, modules=names) as tr:
        run(tiny_shapes, steps=3)
    acts = tr.activations()
    mid = acts.values["unet.mid_block"]
    assert mid.shape == (3, 2, tiny_shapes.unet.config.block_out_channels[-1])  # steps, prompts (cond half), channels
    text = acts.values["text_encoder.encoder.layers.1"]
    assert text.shape[:2] == (2, 2)  # call 0 = prompts, call 1 = empty negative prompts
    assert not torch.allclose(text[0, 0], text[0, 1])  # two different prompts
    assert torch.allclose(text[1, 0], text[1, 1])  # the same empty prompt twice
    frame = acts.to_frame()
    assert set(frame.module) == set(names) and {"call", "prompt", "feature", "value"} <= set(frame.columns)


def test_pooled_values_match_the_module_output(tiny_shapes):
    captured = []
    handle = tiny_shapes.unet.mid_block.register_forward_hook(lambda m, i, o: captured.append(first_tensor(o)))
    with trace(tiny_shapes, layers=None, modules=["unet.mid_block"], pool="none") as tr:
        run(tiny_shapes, steps=1)
    handle.remove()
    conditional = captured[0][2:]  # [uncond, cond] batch
    assert torch.equal(tr.activations().get("unet.mid_block", call=0), conditional)
    assert torch.allclose(pool_tensor(conditional, "mean"), conditional.mean(dim=(2, 3)))


def test_steps_selection_applies_to_unet_modules(tiny_shapes):
    with trace(tiny_shapes, layers=None, modules=["unet.mid_block"], steps=[0, 2]) as tr:
        run(tiny_shapes, steps=4)
    assert tr.activations().values["unet.mid_block"].shape[0] == 2


def test_unknown_modules_name_what_exists(tiny_shapes):
    with pytest.raises(ValueError, match="unet has no child 'mid_blok'; its children are: .*mid_block"):
        trace(tiny_shapes, modules=["unet.mid_blok"]).__enter__()
    with pytest.raises(ValueError, match="no component 'vae'; its components are: .*unet"):
        trace(tiny_shapes, modules=["vae.decoder"]).__enter__()
    with pytest.raises(ValueError, match="nothing to capture"):
        trace(tiny_shapes, layers=None).__enter__()


def test_pool_known_answers():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert torch.equal(pool_tensor(x, "mean"), torch.tensor([[1.5, 5.5]]))
    assert torch.equal(pool_tensor(x, "max"), torch.tensor([[3.0, 7.0]]))
    tokens = torch.arange(6.0).reshape(1, 3, 2)
    assert torch.equal(pool_tensor(tokens, "mean"), torch.tensor([[2.0, 3.0]]))


def test_direct_denoiser_call_after_a_guided_generation_keeps_the_whole_batch(tiny_shapes):
    run(tiny_shapes, steps=1, guidance_scale=3.0)  # leaves the pipeline's guidance scale set
    assert tiny_shapes.do_classifier_free_guidance
    ids = tiny_shapes.tokenizer(PROMPTS * 2, padding="max_length", max_length=tiny_shapes.tokenizer.model_max_length, return_tensors="pt").input_ids
    with trace(tiny_shapes, layers=None, modules=["unet.mid_block"]) as tr, torch.no_grad():
        context = tiny_shapes.text_encoder(ids)[0]
        tiny_shapes.unet(torch.randn(4, 3, 32, 32), 10, encoder_hidden_states=context)
    assert tr.activations().values["unet.mid_block"].shape[1] == 4
