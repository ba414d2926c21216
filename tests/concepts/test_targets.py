import pytest
import torch
from diffusers import DDPMScheduler

from workbench.concepts.pipeline_io import clean_estimate
from workbench.concepts.targets import TargetModel, classifier_logit, classifier_logits, gradients_at, layer_gradients
from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.shapesworld.scenes import scenes_to_tensor
from workbench.shapesworld import sample_scenes


@pytest.fixture(scope="module")
def setup():
    from ..shapes_fixtures import tiny_shapes_pipeline

    scenes = sample_scenes(4, seed=0, n_objects=1)
    torch.manual_seed(0)  # the classifier's weights
    return tiny_shapes_pipeline(), ShapesClassifier().eval(), scenes_to_tensor(scenes), [s.caption for s in scenes]


def test_gradients_match_a_finite_difference_along_a_direction(setup):
    pipe, classifier, images, prompts = setup
    target = classifier_logit(classifier, "color", "red")
    acts, grads = layer_gradients(pipe, "unet.mid_block", images, prompts, target, timestep=300)
    channels = pipe.unet.config.block_out_channels[-1]
    assert acts.shape == grads.shape == (4, channels)
    # derivative along a direction added at every position equals grads . direction
    direction = torch.randn(channels, generator=torch.Generator().manual_seed(1))
    eps = 1e-2

    def shifted(delta):
        handle = pipe.unet.mid_block.register_forward_hook(lambda m, i, o: o + delta * direction[None, :, None, None])
        try:
            g = torch.Generator().manual_seed(0)
            noise = torch.randn(images.shape, generator=g)
            t = torch.full((4,), 300)
            a = pipe.scheduler.alphas_cumprod[300]
            noisy = pipe.scheduler.add_noise(images, noise, t)
            with torch.no_grad():
                ctx = pipe.text_encoder(pipe.tokenize(prompts))[0]
                e = pipe.unet(noisy, t, encoder_hidden_states=ctx).sample
                return target((noisy - (1 - a).sqrt() * e) / a.sqrt())
        finally:
            handle.remove()

    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    assert torch.allclose(numeric, grads @ direction, rtol=2e-2, atol=2e-4)
    assert all(p.grad is None for p in pipe.unet.parameters())


def test_unknown_classes_heads_and_modules_are_named(setup):
    pipe, classifier, images, prompts = setup
    with pytest.raises(ValueError, match="no class 'teal'; its classes are: red, green"):
        classifier_logit(classifier, "color", "teal")
    with pytest.raises(ValueError, match="no head 'texture'"):
        classifier_logit(classifier, "texture", "red")
    with pytest.raises(ValueError, match=r"the target returned \(\); expected one scalar per input, a tensor of shape \(4,\)"):
        layer_gradients(pipe, "unet.mid_block", images, prompts, lambda x: x.sum())
    with pytest.raises(ValueError, match="unet has no child 'middle'"):
        layer_gradients(pipe, "unet.middle", images, prompts, lambda x: x.sum())


def test_several_modules_take_one_forward_and_match_one_at_a_time(setup):
    pipe, classifier, images, prompts = setup
    target = classifier_logit(classifier, "color", "red")
    calls = []
    handle = pipe.unet.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        both = gradients_at(pipe, ["unet.mid_block", "unet.up_blocks.1"], images, prompts, target, timestep=300)
    finally:
        handle.remove()
    assert len(calls) == 1 and all(p.grad is None for p in pipe.unet.parameters())
    for module in ("unet.mid_block", "unet.up_blocks.1"):
        acts, grads = layer_gradients(pipe, module, images, prompts, target, timestep=300)
        assert torch.allclose(both[module][0], acts, atol=1e-6) and torch.allclose(both[module][1], grads, atol=1e-6)


def test_gradients_with_frozen_weights(setup):
    pipe, classifier, images, prompts = setup
    target = classifier_logit(classifier, "color", "red")
    expected = layer_gradients(pipe, "unet.up_blocks.1", images, prompts, target)[1]
    pipe.unet.requires_grad_(False)
    try:
        assert torch.allclose(layer_gradients(pipe, "unet.up_blocks.1", images, prompts, target)[1], expected, atol=1e-6)
    finally:
        pipe.unet.requires_grad_(True)


def test_target_model_is_the_target_and_its_pooled_layers_are_ours(setup):
    pipe, classifier, images, prompts = setup
    layers = ["unet.down_blocks.0", "unet.mid_block", "unet.up_blocks.1"]  # a down block returns a tuple
    model = TargetModel(pipe, classifier_logits(classifier, "color"), pooled=layers)
    inputs = model.inputs(images, prompts, timestep=300, seed=2)
    red = classifier.heads["color"].index("red")
    ours = gradients_at(pipe, layers, images, prompts, classifier_logit(classifier, "color", "red"), timestep=300, seed=2)
    # the same function of the inputs, and the pooled layers give our activations and gradients
    kept = {}
    handles = [model.pooled.unet.mid_block.register_forward_hook(lambda m, i, o: kept.setdefault("mid", o))]
    with torch.enable_grad():
        logits = model(*inputs)
    handles[0].remove()
    assert logits.shape == (4, len(classifier.heads["color"]))
    assert torch.allclose(kept["mid"], ours["unet.mid_block"][0], atol=1e-6)
    captum_attr = pytest.importorskip("captum.attr")
    for layer in layers:
        tap = model.get_submodule(f"pooled.{layer}")
        grads = captum_attr.LayerGradientXActivation(model, tap, multiply_by_inputs=False).attribute(inputs, target=red)
        assert torch.allclose(grads, ours[layer][1], atol=1e-6, rtol=1e-4)
        if layer == "unet.down_blocks.0":
            continue  # captum's own layer gradient there is of the tuple's first item only
        block = model.get_submodule(layer)
        full = captum_attr.LayerGradientXActivation(model, block, multiply_by_inputs=False).attribute(inputs, target=red)
        assert torch.allclose(full.sum((2, 3)), ours[layer][1], atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="only denoiser modules"):
        TargetModel(pipe, classifier_logits(classifier, "color"), pooled=["text_encoder.encoder"])
    with pytest.raises(ValueError, match="no head 'texture'"):
        classifier_logits(classifier, "texture")


def test_x0_hat_inverts_the_noising_known_answer():
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 250, 600, 900])
    noisy = scheduler.add_noise(images, noise, t)
    assert torch.allclose(clean_estimate(scheduler, noisy, noise, t), images, atol=1e-3)
    # a noise estimate off by d moves the estimate by -d sqrt(1 - a) / sqrt(a)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(clean_estimate(scheduler, noisy, noise + 0.01, t), images - 0.01 * (1 - a).sqrt() / a.sqrt(), atol=1e-3)
