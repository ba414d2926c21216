"""What does tracing cost? Writes benchmarks/results/trace_overhead.json.

ratio = traced / untraced wall time of the same generation (same process, same seed), median
of alternating repeats, with the default streaming capture of every cross-attention layer.
`toy` is the embedded ShapesWorld pipeline; `sd_shaped` a random-weight pipeline with Stable
Diffusion 1.5's block structure (4 levels, 2 layers per block, attention at 64/32/16) at
reduced width, 512x512 images (64x64 latents), on the CPU. The store's size is measured for
10, 25 and 50 steps of the toy pipeline: it should not grow.

The cost of reading one heat map at a user's resolution: the SD-shaped trace's maps are saved,
and a fresh process loads them and times `maps.word("red", prompt=0)` at the default 512 px,
with the memory it adds (peak resident memory after the call minus resident memory before);
goal 0.1 s and 300 MB. The same for `maps.stack()` (every token of every layer upsampled, how
`word()` worked before) as the reference.

    python benchmarks/trace_overhead.py [--repeats 3]
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
from workbench.pipelines.random_pipelines import save_random_pipeline

RESULT = Path(__file__).parent / "results" / "trace_overhead.json"


def timed(pipe, prompts, steps, traced: bool, **kwargs) -> tuple[float, np.ndarray, int]:
    generator = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    if traced:
        with trace(pipe, layers="all") as tr:
            images = pipe(prompts, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).images
        stored = tr.store.nbytes
    else:
        images = pipe(prompts, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).images
        stored = 0
    return time.perf_counter() - tic, images, stored


def ratio(pipe, prompts, steps, repeats, **kwargs) -> dict:
    timed(pipe, prompts, 1, True, **kwargs)  # warm-up
    plain, traced = [], []
    for _ in range(repeats):  # alternate so that machine noise hits both alike
        seconds, reference, _ = timed(pipe, prompts, steps, False, **kwargs)
        plain.append(seconds)
        seconds, images, _ = timed(pipe, prompts, steps, True, **kwargs)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sd-width", type=int, default=32, help="channels of the SD-shaped UNet's first block (SD 1.5: 320)")
    parser.add_argument("--sd-steps", type=int, default=3)
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

    result = {
        "ratio_toy": toy_result["ratio"],
        "ratio_sd_shaped": sd_result["ratio"],
        "store_bytes_by_steps": {str(k): v for k, v in store.items()},
        "word_map_seconds_512": word_map["word"]["seconds"],
        "word_map_extra_mb_512": word_map["word"]["extra_mb"],
        "full_stack_seconds_512": word_map["stack"]["seconds"],
        "full_stack_extra_mb_512": word_map["stack"]["extra_mb"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "details": {"toy": toy_result, "sd_shaped": sd_result},
        "settings": {
            "repeats": args.repeats, "toy": "8 prompts, 25 steps, CFG 3", "sd_shaped": f"1 prompt, {args.sd_steps} steps, 512x512 (64x64 latents), width {args.sd_width}, 2 layers/block",
            "capture": "trace(pipe, layers='all'): every cross-attention layer, streaming mean, heads averaged",
            "word_map": "maps.word('red', prompt=0) at 512x512 on the SD-shaped trace's maps, loaded in a fresh process; "
                        "maps.stack() likewise (every token of every layer upsampled) as the reference",
            "device": "cpu", "threads": torch.get_num_threads(),
        },
        "versions": {"workbench": workbench.__version__, "torch": torch.__version__},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("ratio_toy", "ratio_sd_shaped", "store_bytes_by_steps", "word_map_seconds_512", "word_map_extra_mb_512", "peak_rss_mb")}, indent=1))


if __name__ == "__main__":
    main()
