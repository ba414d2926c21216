"""What does tracing cost? Writes benchmarks/results/trace_overhead.json.

ratio = traced / untraced wall time of the same generation (same process, same seed), median
of alternating repeats, with the default streaming capture of every cross-attention layer.
`toy` is the embedded ShapesWorld pipeline; `sd_shaped` a random-weight pipeline with Stable
Diffusion 1.5's block structure (4 levels, 2 layers per block, attention at 64/32/16) at
reduced width, 512x512 images (64x64 latents), on the CPU. The store's size is measured for
10, 25 and 50 steps of the toy pipeline: it should not grow.

`sd3_shaped` and `flux_shaped` are random-weight transformers with the block structure of
SD3.5 medium (24 joint blocks, the first 13 dual, per-head RMS norms, head dim 64) and of Flux.1
(19 double-stream and 38 single-stream blocks, rotary positions, head dim 128) at 4 and 2 heads,
512x512 images, every attention layer streamed; `flux_concepts` adds concept maps for 4
concepts (ConceptAttention) to the Flux-shaped trace. Their runs take seconds, so they get more
repeats (`--transformer-repeats`).

The cost of reading one heat map at a user's resolution: the SD-shaped trace's maps are saved,
and a fresh process loads them and times `maps.word("red", prompt=0)` at the default 512 px,
with the memory it adds (peak resident memory after the call minus resident memory before);
goal 0.1 s and 300 MB. The same for `maps.stack()` (every token of every layer upsampled, how
`word()` worked before) as the reference.

    python benchmarks/trace_overhead.py [--repeats 5] [--transformer-repeats 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import workbench
from workbench.capture import trace
from workbench.files import atomic_path
from workbench.pipelines.loading import load_pipeline
from workbench.pipelines.random_pipelines import build_random_pipeline, save_random_pipeline

RESULT = Path(__file__).parent / "results" / "trace_overhead.json"


def timed(pipe, prompts, steps, traced: bool, concepts=None, **kwargs) -> tuple[float, np.ndarray, int]:
    generator = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    if traced:
        with trace(pipe, layers="all", concepts=concepts) as tr:
            images = pipe(prompts, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).images
        stored = tr.store.nbytes
    else:
        images = pipe(prompts, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).images
        stored = 0
    return time.perf_counter() - tic, images, stored


def ratio(pipe, prompts, steps, repeats, concepts=None, **kwargs) -> dict:
    timed(pipe, prompts, 1, True, concepts, **kwargs)  # warm-up
    plain, traced = [], []
    for _ in range(repeats):  # alternate so that machine noise hits both alike
        seconds, reference, _ = timed(pipe, prompts, steps, False, **kwargs)
        plain.append(seconds)
        seconds, images, _ = timed(pipe, prompts, steps, True, concepts, **kwargs)
        traced.append(seconds)
        assert np.array_equal(reference, images), "tracing changed the output"
    return {
        "ratio": statistics.median(traced) / statistics.median(plain),
        "untraced_seconds": plain,
        "traced_seconds": traced,
    }


def word_map_cost(maps_file: Path, call: str) -> dict:
    """Seconds and extra MB of one `call` ("word" or "stack") on saved maps, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure-call", call, "--maps", str(maps_file)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_bytes() -> int:
    """The process' peak resident memory since the last `_reset_peak_rss` (Linux VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak to the current resident memory, so the
    peak after a call is the call's own, not an earlier import's."""
    Path("/proc/self/clear_refs").write_text("5")


def measure_call(maps_file: Path, call: str) -> None:
    """Child process: load the maps, then time one call and the memory it adds."""
    import psutil

    from workbench.capture import AttentionMaps

    maps = AttentionMaps.load(maps_file)
    _reset_peak_rss()
    before = psutil.Process().memory_info().rss
    tic = time.perf_counter()
    result = maps.word("red", prompt=0) if call == "word" else maps.stack()
    seconds = time.perf_counter() - tic
    extra = max(_peak_rss_bytes() - before, 0)
    print(json.dumps({"seconds": seconds, "extra_mb": extra / 2**20, "shape": list(result.shape)}))


def transformer_shaped(family: str, folder: str):
    """A random pipeline of `family` ("sd3" or "flux") whose transformer has the full model's
    block structure at reduced width."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    pipe = build_random_pipeline(family, folder)
    if family == "sd3":
        transformer = SD3Transformer2DModel(
            sample_size=64, patch_size=2, in_channels=4, out_channels=4, num_layers=24, attention_head_dim=64, num_attention_heads=4,
            joint_attention_dim=64, caption_projection_dim=256, pooled_projection_dim=64, dual_attention_layers=tuple(range(13)),
            qk_norm="rms_norm",
        )
    else:
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=2,
            joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(16, 56, 56),
        )
    pipe.register_modules(transformer=transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sd-width", type=int, default=320, help="channels of the SD-shaped UNet's first block (SD 1.5: 320; smaller for a quick run)")
    parser.add_argument("--sd-steps", type=int, default=3)
    parser.add_argument("--transformer-steps", type=int, default=2)
    parser.add_argument("--transformer-repeats", type=int, default=7, help="their runs are short (seconds), so noisier: more repeats")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--measure-call", choices=("word", "stack"), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--maps", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_call:
        measure_call(args.maps, args.measure_call)
        return

    toy = load_pipeline("shapes")
    toy.set_progress_bar_config(disable=True)
    toy_prompts = ["a large red circle on a gray background", "a small blue square and a large yellow cross on a striped background"] * 4
    toy_result = ratio(toy, toy_prompts, 25, args.repeats)
    store = {steps: timed(toy, toy_prompts, steps, True)[2] for steps in (10, 25, 50)}

    with tempfile.TemporaryDirectory() as folder:
        sd = load_pipeline(save_random_pipeline("sd15", folder, width=args.sd_width, layers_per_block=2))
        sd.set_progress_bar_config(disable=True)
        sd_prompts = ["a photo of a red cat on a sofa"]
        sd_result = ratio(sd, sd_prompts, args.sd_steps, args.repeats, height=512, width=512)
        with trace(sd, layers="all") as tr:
            sd(sd_prompts, num_inference_steps=1, generator=torch.Generator().manual_seed(0), height=512, width=512)
        maps_file = Path(folder) / "maps.safetensors"
        tr.attention_maps().save(maps_file)
        word_map = {call: word_map_cost(maps_file, call) for call in ("word", "stack")}

    shaped = {}
    options = dict(height=512, width=512, max_sequence_length=32)
    with tempfile.TemporaryDirectory() as folder:
        for family in ("sd3", "flux"):
            pipe = transformer_shaped(family, str(Path(folder) / family))
            shaped[family] = ratio(pipe, sd_prompts, args.transformer_steps, args.transformer_repeats, **options)
            if family == "flux":
                shaped["flux_concepts"] = ratio(pipe, sd_prompts, args.transformer_steps, args.transformer_repeats,
                                                concepts=["cat", "sofa", "sky", "dog"], **options)

    result = {
        "ratio_toy": toy_result["ratio"],
        "ratio_sd_shaped": sd_result["ratio"],
        "ratio_sd3_shaped": shaped["sd3"]["ratio"],
        "ratio_flux_shaped": shaped["flux"]["ratio"],
        "ratio_flux_concepts": shaped["flux_concepts"]["ratio"],
        "store_bytes_by_steps": {str(k): v for k, v in store.items()},
        "word_map_seconds_512": word_map["word"]["seconds"],
        "word_map_extra_mb_512": word_map["word"]["extra_mb"],
        "full_stack_seconds_512": word_map["stack"]["seconds"],
        "full_stack_extra_mb_512": word_map["stack"]["extra_mb"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "details": {"toy": toy_result, "sd_shaped": sd_result, **{f"{k}_shaped" if k != "flux_concepts" else k: v for k, v in shaped.items()}},
        "settings": {
            "repeats": args.repeats, "transformer_repeats": args.transformer_repeats, "toy": "8 prompts, 25 steps, CFG 3", "sd_shaped": f"1 prompt, {args.sd_steps} steps, 512x512 (64x64 latents), width {args.sd_width}, 2 layers/block",
            "sd3_shaped": f"1 prompt, {args.transformer_steps} steps, 512x512, CFG (the pipeline's 7.0), 24 joint blocks (13 dual), 4 heads of 64",
            "flux_shaped": f"1 prompt, {args.transformer_steps} steps, 512x512, guidance embedding (no CFG), 19 double + 38 single blocks, 2 heads of 128",
            "flux_concepts": "flux_shaped traced with concepts=['cat', 'sofa', 'sky', 'dog']",
            "capture": "trace(pipe, layers='all'): every cross-attention layer (joint and single-stream text parts), streaming mean, heads averaged",
            "word_map": "maps.word('red', prompt=0) at 512x512 on the SD-shaped trace's maps, loaded in a fresh process; "
                        "maps.stack() likewise (every token of every layer upsampled) as the reference",
            "device": "cpu", "threads": torch.get_num_threads(),
        },
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("ratio_toy", "ratio_sd_shaped", "ratio_sd3_shaped", "ratio_flux_shaped", "ratio_flux_concepts", "store_bytes_by_steps", "word_map_seconds_512", "word_map_extra_mb_512", "peak_rss_mb")}, indent=1))


if __name__ == "__main__":
    main()
