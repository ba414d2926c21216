import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from workbench.models.classifier import ShapesClassifier
from workbench.models.loading import embedded_path
from workbench.training.denoising import noised
from workbench.training.identity import identity_loss
from workbench.world import sample_scenes
from workbench.world.scenes import scenes_to_tensor


def _noised_scenes(n: int = 4):
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    images = scenes_to_tensor(sample_scenes(n, seed=3, n_objects=(1,)))
    noisy, noise, t = noised(scheduler, images, torch.Generator().manual_seed(0))
    return scheduler, images, noisy, noise, t


def test_identity_loss_is_zero_for_a_perfect_redraw_and_the_weighted_kl_otherwise():
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))
    scheduler, images, noisy, noise, t = _noised_scenes()
    weights = torch.tensor([1.0, 1.0, 0.0, 1.0])
    assert identity_loss(classifier, scheduler, images, noisy, noise, t, weights).abs() < 1e-5
    # predict the noise that redraws a grey image: the KL per sample times its weight
    grey = torch.zeros_like(images)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    wrong_noise = (noisy - a.sqrt() * grey) / (1 - a).sqrt()
    with torch.no_grad():
        want, got = classifier((images + 1) / 2).logits, classifier((grey + 1) / 2).logits
    kl = sum((F.softmax(want[h], 1) * (F.log_softmax(want[h], 1) - F.log_softmax(got[h], 1))).sum(1) for h in want)
    expected = (kl * weights).mean()
    loss = identity_loss(classifier, scheduler, images, noisy, wrong_noise, t, weights)
    assert loss > 0 and torch.allclose(loss, expected, atol=1e-5)
