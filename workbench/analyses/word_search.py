"""Textual Inversion (Gal et al., 2023) as an attack on an erasure: a few hundred steps learning
one new word's embedding, every weight frozen, so that the model denoises images of the concept
well when prompted with that word. If generations from the word show the concept, the model can
still draw it and only its old word lost it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..concepts.pipeline_io import clean_estimate, denoiser, denoiser_row, encode_prompts, is_flow_matching, noise_to, predict, to_latents
from ..pipelines.embeddings import LearnedWord, insert_embeddings, text_encoders, tokenizer_of


def _snr(scheduler, level: int) -> float:
    """Signal-to-noise ratio of a noise level: a_t / (1 - a_t), or ((1 - s) / s)^2 for flow matching."""
    if is_flow_matching(scheduler):
        s = level / scheduler.config.get("num_train_timesteps", 1000)
        return ((1 - s) / s) ** 2
    a = float(scheduler.alphas_cumprod[level])
    return a / (1 - a)


def search_word(
    pipe, images: torch.Tensor, prompts: Sequence[str], token: str = "<found>", steps: int = 200, batch_size: int = 4,
    learning_rate: float = 5e-3, seed: int = 0, min_snr_gamma: float = 5.0,
) -> list[LearnedWord]:
    """Learn a new word that makes `pipe` denoise `images` well, and leave it inserted in `pipe`.

    Only the word's embedding learns (one vector per text encoder; every weight of the model is
    frozen and left unchanged). The loss is the clean-image error of the denoiser's one-step
    estimate weighted by min(SNR, gamma), which is Min-SNR epsilon training for DDPM-type models
    and works alike for v-prediction and flow matching.

    Args:
        images: (n, 3, y, x) in [-1, 1] at the pipeline's resolution, showing the concept.
        prompts: templates with "{word}" where the word goes, e.g. "a {word} circle on a gray
            background"; each step pairs images with randomly drawn templates.
        token: the new word (must not be in the tokenizer).

    Returns:
        The learned word, one LearnedWord per text encoder (save with `safetensors` to reuse).

    Raises:
        ValueError: no images, a template without "{word}", a token the tokenizer has, a
            pipeline whose denoiser has no row in `concepts.pipeline_io`, or a token that does
            not reach an encoder as one token (e.g. cut by truncation, or split by a tokenizer
            that lower-cases it).
    """
    if len(images) == 0 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected (n, 3, y, x) in [-1, 1], got shape {tuple(images.shape)}")
    if not prompts or any("{word}" not in p for p in prompts):
        raise ValueError(f'prompts: every template needs "{{word}}" where the searched word goes, got {list(prompts)}')
    denoiser_row(pipe)  # refuses a pipeline the search cannot call, before the token is inserted
    encoders = text_encoders(pipe)  # a word needs a vector in each (insert_embeddings checks)
    insert_embeddings(pipe, [LearnedWord(token, getattr(pipe, name).get_input_embeddings().weight.detach().float().mean(0, keepdim=True), name)
                             for name in encoders])  # starts from the mean word: no hint of the concept
    tables = {name: getattr(pipe, name).get_input_embeddings() for name in encoders}
    rows = {name: tokenizer_of(pipe, name).convert_tokens_to_ids(token) for name in encoders}
    learned = {name: tables[name].weight[rows[name]].detach().float().clone().requires_grad_(True) for name in encoders}
    optimizer = torch.optim.AdamW(list(learned.values()), lr=learning_rate, weight_decay=0.0)
    modules = [denoiser(pipe)] + [getattr(pipe, name) for name in encoders]
    trainable = [[p.requires_grad for p in module.parameters()] for module in modules]
    for module in modules:
        module.requires_grad_(False)
    with torch.no_grad():
        clean = to_latents(pipe, images)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    total = pipe.scheduler.config.get("num_train_timesteps", 1000)
    try:
        seen = {name: False for name in encoders}
        with _reading(tables, rows, learned, seen):
            for step in tqdm(range(steps), desc=f"search {token}"):
                x0 = clean[rng.integers(0, len(clean), batch_size)]
                conditioning = encode_prompts(pipe, [prompts[i].replace("{word}", token) for i in rng.integers(0, len(prompts), batch_size)])
                level = int(rng.integers(20, total - 20))
                noise = torch.randn(x0.shape, generator=generator).to(x0)
                noisy, timesteps = noise_to(pipe.scheduler, x0, noise, level)
                estimate = clean_estimate(pipe.scheduler, noisy, predict(pipe, noisy, timesteps, conditioning), timesteps)
                loss = min(_snr(pipe.scheduler, level), min_snr_gamma) * (estimate.float() - x0.float()).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                unreached = [name for name in encoders if not seen[name]]
                if step == 0 and unreached:
                    raise ValueError(f"the word {token!r} does not reach {', '.join(unreached)} as its own token in {prompts[0]!r}; "
                                     "give a lower-case token without spaces, and prompts short enough to keep it")
                optimizer.step()
    finally:
        for module, flags in zip(modules, trainable):
            for parameter, flag in zip(module.parameters(), flags):
                parameter.requires_grad_(flag)
    with torch.no_grad():
        for name in encoders:
            tables[name].weight[rows[name]] = learned[name].to(tables[name].weight.dtype)
    return [LearnedWord(token, learned[name].detach().clone()[None], name, source="search_word") for name in encoders]


@contextmanager
def _reading(tables: dict[str, torch.nn.Module], rows: dict[str, int], learned: dict[str, torch.Tensor], seen: dict[str, bool]) -> Iterator[None]:
    """While open, each embedding module gives `learned[name]` for its word's row, so the
    gradient reaches the learned vector and the frozen table is left as it is; `seen[name]`
    turns True once the row is read."""
    def hook(name: str):
        def swap(module, inputs, output):
            hit = (inputs[0] == rows[name]).unsqueeze(-1)
            seen[name] = seen[name] or bool(hit.any())
            return torch.where(hit, learned[name].to(output.dtype), output)
        return swap

    handles = [tables[name].register_forward_hook(hook(name)) for name in tables]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
