"""Is TCAV right on a model with a known answer, and does it agree with captum, faster?
Writes benchmarks/results/tcav_check.json.

Planted: the concept "red" (images of red objects) should drive the ShapesWorld classifier's
"red" colour logit read from the model's x0-hat at a UNet layer, tested alone at --layer: the
first down block, whose output also feeds the decoder's skip connections (colour is a
fine-scale feature; at the mid block and the up blocks, whose scores are listed as well, the
embedded model shows no such effect). Random sets posing as concepts there (--posing of them)
should almost never come out significant (false-positive rate, goal <= 0.05): reported after
the Bonferroni correction over the posing sets, uncorrected at p < 0.05, and, for comparison,
uncorrected under the per-run t-test that run_tcav no longer uses (see concepts/tcav.py).

Against captum.concept.TCAV, on the same model (workbench.concepts.TargetModel: noisy image,
timestep, token ids -> classifier logits of x0-hat), the same layers (--compare-layers),
concepts, random sets and inputs, in this process. We mean-pool a UNet block's output over
positions; TargetModel exposes that pooled output to captum as the layer "pooled.<block>" (the
gradient there is our position-summed gradient), so captum sees exactly our features.
- speed (goal >= 10): the same work, 2 concepts x 2 UNet layers against R random sets plus the R
  random-vs-random runs (ours fits every pair of random sets, R (R - 1) / 2, for its set-level
  test: more than captum's R), timed (wall and CPU) for captum as shipped (its DefaultClassifier, an
  SGD linear SVM per experimental set; activations and CAVs written to a temporary save_path)
  and for run_tcav from cold (no cached activations). captum 0.9 recomputes each concept's
  activations for every experimental set it is in (see captum_activation_cache_fixed); captum
  with that repaired is timed too; and the UNet passes alone (every set's activations from
  cold and the inputs' gradients), which bound any implementation: captum / that time is the
  largest speedup possible without skipping UNet work;
- agreement (goal <= 0.02): captum with OUR fitted CAVs (a captum Classifier that returns
  them), so that only the gradients and the scoring differ: the largest |sign-count score
  difference| over every concept, layer and run. The classifier also checks that captum's
  activations equal ours.

    python benchmarks/tcav_check.py [--random 20] [--size 50]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import workbench
from workbench.concepts import (
    TargetModel,
    gradients_at,
    layer_activations,
    run_tcav,
)
from workbench.concepts.targets import classifier_logit, classifier_logits
from workbench.shapesworld.concepts import from_query, random_sets
from workbench.files import atomic_path
from workbench.shapesworld.models.classifier import ShapesClassifier
from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.data import embedded_path

RESULT = Path(__file__).parent / "results" / "tcav_check.json"


def captum_concepts(model: TargetModel, sets, timestep: int, seed: int):
    """captum Concepts (ids in order) whose single batch is the model's inputs for each set."""
    from captum.concept import Concept

    return [Concept(i, s.name, [model.inputs(s.images, s.prompts, timestep, seed)]) for i, s in enumerate(sets)]


def experimental_sets(concepts, randoms):
    """Each concept against each random set, then each random set against the next (as run_tcav)."""
    pairs = [[c, r] for c in concepts for r in randoms]
    return pairs + [[r, randoms[(i + 1) % len(randoms)]] for i, r in enumerate(randoms)]


def ours_by_experimental_set(found: dict, c_concepts, c_randoms, layers, pooled) -> tuple[dict, dict]:
    """Our CAVs and sign-count scores keyed as captum's experimental sets (experimental_sets):
    (first id, second id, tap) -> unit CAV, and ("first-second", tap) -> score; `found` maps
    (concept, layer) to our TCAVResult."""
    cavs, scores = {}, {}
    for layer, tap in zip(layers, pooled):
        for c in c_concepts:
            for i, r in enumerate(c_randoms):
                cavs[c.id, r.id, tap] = found[c.name, layer].cavs[i]
                scores[f"{c.id}-{r.id}", tap] = found[c.name, layer].scores[i]
        for i, r in enumerate(c_randoms):
            k = (i + 1) % len(c_randoms)
            cavs[r.id, c_randoms[k].id, tap] = found[c_concepts[0].name, layer].random_cavs[i, k]
            scores[f"{r.id}-{c_randoms[k].id}", tap] = found[c_concepts[0].name, layer].random_pair_scores[i, k]
    return cavs, scores


def fixed_cav_classifier(our_activations: dict, our_cavs: dict):
    """A captum Classifier that trains nothing: it hands back our CAV for the experimental set.

    our_activations: concept id -> layer -> our pooled activations (n, C);
    our_cavs: (first id, second id, layer) -> our unit CAV (C,), pointing towards the first.
    The layer is recognised from the activations captum passes in (n, C * positions), which
    pooled over positions must equal ours; the largest difference seen is kept.
    """
    from captum.concept import Classifier

    class FixedCAVs(Classifier):
        def __init__(self):
            self.max_activation_error = 0.0

        def train_and_eval(self, dataloader, **kwargs):
            x, y = zip(*dataloader)
            x, y = torch.cat(x), torch.cat(y)
            first, second = dict.fromkeys(y.tolist())  # the order of the experimental set
            rows = x[y == first]
            best = None
            for layer, ours in our_activations[first].items():
                channels = ours.shape[1]
                if rows.shape[1] % channels == 0:
                    error = float((rows.view(len(rows), channels, -1).mean(-1) - ours).abs().max())
                    best = min(best or (error, layer), (error, layer))
            error, layer = best
            self.max_activation_error = max(self.max_activation_error, error)
            cav = torch.as_tensor(our_cavs[first, second, layer], dtype=torch.float32)
            full = cav[:, None].expand(-1, rows.shape[1] // len(cav)).reshape(-1)  # v at every position
            self._weights, self._classes = torch.stack([full, -full]), [first, second]
            return {"accs": torch.tensor(float("nan"))}

        def weights(self):
            return self._weights

        def classes(self):
            return self._classes

    return FixedCAVs()


def per_run_t_test_rate(results) -> float:
    """The uncorrected false-positive rate of the per-run t-test that treats the R scores
    sharing one concept set as independent (R concept-vs-random against the R random r vs r+1
    scores), for comparison with the set-level test run_tcav uses."""
    from scipy import stats

    flagged = []
    for result in results:
        r_count = len(result.scores)
        chain = np.array([result.random_pair_scores[r, (r + 1) % r_count] for r in range(r_count)])
        flagged.append(stats.ttest_ind(result.scores, chain).pvalue < 0.05)
    return float(np.mean(flagged))


def timed(fn, *args):
    """(fn(*args), (wall seconds, CPU seconds of this process)): CPU time is less sensitive to
    other work on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


@contextmanager
def captum_activation_cache_fixed():
    """captum 0.9's TCAV.load_cavs calls AV.exists(path, model_id, layer, identifier) with the
    layer and the concept swapped, so it never finds the activations it saved and recomputes
    both concepts' activations for every experimental set. Within this block it finds them."""
    from captum.concept._core import tcav as captum_tcav

    shipped = captum_tcav.AV

    class FixedAV(shipped):
        @staticmethod
        def exists(path, model_id, identifier=None, layer=None, num_id=None):
            return shipped.exists(path, model_id, layer, identifier, num_id)

    captum_tcav.AV = FixedAV
    try:
        yield
    finally:
        captum_tcav.AV = shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=20, help="R random sets")
    parser.add_argument("--posing", type=int, default=40, help="random sets posing as concepts (false-positive rate)")
    parser.add_argument("--size", type=int, default=50, help="examples per concept set (and inputs)")
    parser.add_argument("--layer", default="unet.down_blocks.0", help="the planted layer")
    parser.add_argument("--compare-layers", default="unet.mid_block,unet.up_blocks.1", help="the two layers compared with captum")
    parser.add_argument("--timestep", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Using default classifier")  # captum's, about memory
    warnings.filterwarnings("ignore", message="Creating a tensor from a list of numpy")  # inside captum's SGD wrapper

    from captum.concept import TCAV
    from captum.concept._utils.classifier import DefaultClassifier

    pipe = load_pipeline("shapes")
    classifier = ShapesClassifier.from_pretrained(embedded_path("shapes-classifier")).eval()
    target = ("color", "red")
    layers = args.compare_layers.split(",")
    inputs = from_query("red inputs", "color=red", args.size, seed=args.seed + 1000)
    concepts = [from_query("red", "color=red", args.size, seed=args.seed + 1),
                from_query("blue", "color=blue", args.size, seed=args.seed + 2)]
    randoms = random_sets(args.random, args.size, seed=args.seed)
    pooled = [f"pooled.{layer}" for layer in layers]  # captum's names for our mean-pooled layers
    model = TargetModel(pipe, classifier_logits(classifier, target[0]), pooled=layers).eval()
    score = classifier_logit(classifier, *target)
    target_index = classifier.heads[target[0]].index(target[1])
    captum_inputs = model.inputs(inputs.images, inputs.prompts, args.timestep, args.seed)
    c_concepts = captum_concepts(model, concepts, args.timestep, args.seed)
    c_randoms = captum_concepts(model, randoms, args.timestep, args.seed)
    for i, c in enumerate(c_randoms):
        c.id = len(c_concepts) + i
    sets = experimental_sets(c_concepts, c_randoms)
    gradients_at(pipe, layers, inputs.images[:4], inputs.prompts[:4], score, args.timestep)  # warm-up

    work = Path(tempfile.mkdtemp(prefix="tcav-check-"))

    def captum_run(classifier, save: str):
        random.seed(args.seed)  # DefaultClassifier's train/test split
        tcav = TCAV(model, pooled, model_id="shapes", classifier=classifier, save_path=str(work / save))
        return tcav.interpret(captum_inputs, sets, target=target_index)

    def ours_run():
        out = run_tcav(pipe, score, inputs, concepts, randoms, layers, timestep=args.timestep, seed=args.seed, cache_dir=work / "ours")
        return out.results, out.to_frame()

    try:
        # captum as shipped (DefaultClassifier: an SGD linear SVM per experimental set, activations
        # and CAVs on disk), then with its activation cache repaired; then ours, from cold
        _, captum_time = timed(captum_run, DefaultClassifier(), "captum")
        with captum_activation_cache_fixed():
            _, captum_fixed_time = timed(captum_run, DefaultClassifier(), "captum-fixed")
        (results, frame), ours_time = timed(ours_run)
        # the UNet passes alone (activations of every set from cold, and the inputs' gradients):
        # what any TCAV of this model must compute, captum included
        _, forward_time = timed(lambda: (
            layer_activations(pipe, concepts + randoms, layers, args.timestep, args.seed),
            gradients_at(pipe, layers, inputs.images, inputs.prompts, score, args.timestep, args.seed)))

        # agreement: captum with OUR CAVs
        found = {(r.concept, r.layer): r for r in results}
        by_id = {c.id: c.name for c in c_concepts + c_randoms}
        ours_acts = layer_activations(pipe, concepts + randoms, layers, args.timestep, args.seed, cache_dir=work / "ours")
        our_cavs, our_scores = ours_by_experimental_set(found, c_concepts, c_randoms, layers, pooled)
        by_tap = {i: {tap: ours_acts[name][layer] for tap, layer in zip(pooled, layers)} for i, name in by_id.items()}
        fixed = fixed_cav_classifier(by_tap, our_cavs)
        with captum_activation_cache_fixed():
            captum_scores = captum_run(fixed, "captum-same-cavs")
        differences = {}
        for (key, tap), ours in our_scores.items():
            theirs = float(captum_scores[key][tap]["sign_count"][0])
            first = by_id[int(key.split("-")[0])]
            name = first if first in {c.name for c in concepts} else "random vs random"
            differences.setdefault(f"{name} @ {tap.removeprefix('pooled.')}", []).append(abs(theirs - float(ours)))
        per_test = {k: max(v) for k, v in differences.items()}

        # planted: "red" at the planted layer, tested alone; then random sets posing as concepts
        # there: how often is a non-concept flagged? (the random sets' activations come from the cache)
        planted = run_tcav(pipe, score, inputs, concepts[:1], randoms, [args.layer], timestep=args.timestep,
                           seed=args.seed, cache_dir=work / "ours").to_frame()
        posing = random_sets(args.posing, args.size, seed=args.seed + 777, prefix="posing")
        null_report = run_tcav(pipe, score, inputs, posing, randoms, [args.layer], timestep=args.timestep, seed=args.seed, cache_dir=work / "ours")
        null_results, null = null_report.results, null_report.to_frame()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    row = planted.iloc[0]
    by_layer = pd.concat([planted, frame[frame.concept == "red"]])
    result = {
        "planted_score": float(row.score),
        "planted_p_value": float(row.p_value),
        "planted_significant": bool(row.significant),
        "planted_cav_accuracy": float(row.cav_accuracy),
        "planted_by_layer": {r.layer: {"score": round(r.score, 4), "random_score": round(r.random_score, 4), "p_value": float(r.p_value)}
                             for r in by_layer.itertuples()},
        "random_false_positive_rate": float(null.significant.mean()),
        "random_false_positive_rate_uncorrected": float((null.p_value < 0.05).mean()),
        "random_false_positive_rate_per_run_t_test": per_run_t_test_rate(null_results),
        "n_posing_sets": len(posing),
        "captum_agreement": max(per_test.values()),
        "captum_agreement_by_test": {k: round(v, 4) for k, v in per_test.items()},
        "captum_activation_max_error": fixed.max_activation_error,
        "speedup_vs_captum": round(captum_time[0] / ours_time[0], 2),
        "captum_seconds": round(captum_time[0], 2),
        "ours_seconds": round(ours_time[0], 2),
        "speedup_vs_captum_cpu_time": round(captum_time[1] / ours_time[1], 2),
        "captum_cpu_seconds": round(captum_time[1], 2),
        "ours_cpu_seconds": round(ours_time[1], 2),
        "ours_unet_pass_seconds": round(forward_time[0], 2),
        "ours_unet_pass_share": round(forward_time[0] / ours_time[0], 3),
        "speedup_ceiling_vs_captum": round(captum_time[0] / forward_time[0], 2),
        "speedup_vs_captum_cache_fixed": round(captum_fixed_time[0] / ours_time[0], 2),
        "captum_cache_fixed_seconds": round(captum_fixed_time[0], 2),
        "captum_cache_fixed_cpu_seconds": round(captum_fixed_time[1], 2),
        "scores": frame.round(4).to_dict(orient="records"),
        "settings": {
            **vars(args), "out": str(args.out), "target": "color=red logit of x0-hat", "concepts": [c.name for c in concepts],
            "threads": torch.get_num_threads(),
            "captum": "captum.concept.TCAV with its DefaultClassifier (SGD linear SVM, alpha 0.01) on our pooled layers "
                      "(TargetModel pooled=...); 2 concepts x R random sets + R random-vs-random sets, at both layers",
            "captum_cache_fixed": "the same with TCAV.load_cavs' swapped AV.exists arguments corrected, so that each "
                                  "concept's activations are computed once (as ours are)",
            "captum_agreement": "captum on the pooled layers with a Classifier returning our CAVs",
            "ours_unet_pass_seconds": "layer_activations of every set (no cache) and gradients_at of the inputs, "
                                      "timed alone: the UNet work any TCAV of this model does once; "
                                      "speedup_ceiling_vs_captum = captum_seconds / it",
        },
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__, "captum": __import__("captum").__version__,
                     "numpy": np.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "scores"}, indent=1))


if __name__ == "__main__":
    main()
