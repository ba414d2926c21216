import pytest
import torch

from workbench.concepts.targets import classifier_logit, layer_gradients
from workbench.models.classifier import ShapesClassifier
from workbench.world.scenes import scenes_to_tensor
from workbench.world import sample_scenes


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
    with pytest.raises(ValueError, match="need a UNet module"):
        layer_gradients(pipe, "text_encoder.encoder", images, prompts, lambda x: x.sum())
    with pytest.raises(ValueError, match="unet has no child 'middle'"):
        layer_gradients(pipe, "unet.middle", images, prompts, lambda x: x.sum())
