"""What did the word encoder learn? Writes benchmarks/results/primary_vs_auxiliary.json.

Held-out one-object images go through the ShapesWorld word encoder; the frozen model redraws
them from "a S*" while its cross-attention is traced. Reported: held-out probe accuracy per
word and factor against chance, each word's attention mass on the drawn object, how often the
redrawn image has the input's colour and shape (judged as in world_quality), and the
disentanglement of all words. As a ceiling, the same template is redrawn with the caption's own
first words ("large red circle") in the slots. The hoped-for split (w0 the object, w1..wk the background) is a
hypothesis this measures, not an assumption.

    python benchmarks/primary_vs_auxiliary.py [--n 200] [--encoder data/shapes-encoder]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.analyses import compare_words
from workbench.shapesworld.comparison import comparison_inputs
from workbench.files import atomic_path
from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.pipelines.elite import injected_words
from workbench.shapesworld.models.judge import judge_images
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.data import embedded_path
from workbench.shapesworld.models.pipeline import DEFAULT_GUIDANCE_SCALE
from workbench.shapesworld.models.word_encoder import WordEncoder
from workbench.shapesworld import sample_scenes

RESULT = Path(__file__).parent / "results" / "primary_vs_auxiliary.json"


def caption_word_redraws(pipe, scenes, n_words: int, steps: int, guidance: float, seed: int, batch_size: int = 32):
    """Images redrawn from "a S*" with the token embeddings of each caption's first words
    after the article in the slots: what words of the model's own vocabulary convey."""
    table = pipe.text_encoder.get_input_embeddings().weight.detach()
    vocabulary = pipe.tokenizer.get_vocab()
    words = torch.stack([table[[vocabulary[w] for w in s.caption.split()[1 : 1 + n_words]]] for s in scenes])
    generator = torch.Generator().manual_seed(seed)
    images = []
    for start in range(0, len(scenes), batch_size):
        batch = words[start : start + batch_size]
        with injected_words(pipe, batch):
            images.append(pipe(["a S*"] * len(batch), num_inference_steps=steps, guidance_scale=guidance,
                               generator=generator, output_type="np").images)
    return np.concatenate(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--encoder", default=None, help="encoder folder (default: the embedded shapes-encoder)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE_SCALE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    pipe = load_pipeline("shapes")
    pipe.set_progress_bar_config(disable=True)
    encoder = WordEncoder.from_pretrained(args.encoder or embedded_path("shapes-encoder"))
    scenes = sample_scenes(args.n, seed=args.seed, split="test", n_objects=1)
    tic = time.perf_counter()
    result = compare_words(pipe, encoder, **comparison_inputs(scenes), steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
                           batch_size=32)
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier"))
    captions = [s.caption for s in scenes]
    _, judged = judge_images(result.generated / 255, captions, classifier)  # uint8 -> [0, 1]
    _, ceiling = judge_images(caption_word_redraws(pipe, scenes, encoder.config.n_words, args.steps, args.guidance, args.seed), captions, classifier)
    probes = result.probes
    report = {
        "probe_accuracy": {w: {f: float(probes.accuracy[i, j]) for j, f in enumerate(probes.factors)} for i, w in enumerate(probes.representations)},
        "chance": {f: float(c) for f, c in zip(probes.factors, probes.chance)},
        "object_mass": {w: float(result.object_mass[:, i].mean()) for i, w in enumerate(result.names)},
        "reconstruction": {
            "color": float(judged.color_correct.mean()),
            "shape": float(judged.shape_correct.mean()),
            "color_and_shape": float((judged.color_correct & judged.shape_correct).mean()),
            "background": float(judged.background_correct.mean()),
            # input shape -> how often each shape was drawn (where the colour was found)
            "shape_drawn": {shape: group.shape_predicted[group.color_correct].value_counts().to_dict()
                            for shape, group in judged.groupby("shape")},
        },
        "caption_words_reconstruction": {"color": float(ceiling.color_correct.mean()), "shape": float(ceiling.shape_correct.mean()),
                                          "background": float(ceiling.background_correct.mean())},
        "word_norms": {w: float(result.norms[:, i].mean()) for i, w in enumerate(result.names)},
        "word_cosine": result.cosine.tolist(),
        "nearest_tokens": result.nearest.to_dict(orient="records"),
        "disentanglement": result.disentanglement,
        "n_images": len(scenes),
        "seconds": round(time.perf_counter() - tic, 1),
        "settings": {**vars(args), "out": str(args.out), "template": "a S*"},
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps({k: report[k] for k in ("probe_accuracy", "chance", "object_mass", "reconstruction", "caption_words_reconstruction")}, indent=1))


if __name__ == "__main__":
    main()
