"""The command line: thin wiring of the public API."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

Config = TypeVar("Config")


def _demo(args: argparse.Namespace) -> None:
    from .shapesworld.demo import run_demo

    path = run_demo(args.out, count=args.count, seed=args.seed, steps=args.steps, probes=args.probes)
    print(f"demo dashboard written to {path.resolve()}")


def _run(args: argparse.Namespace) -> None:
    from .probes import run_probe

    run_dir = run_probe(args.probe, args.out)
    print(f"run written to {run_dir.resolve()}; dashboard: {(run_dir / 'dashboard.html').resolve()}")


def _sweep(args: argparse.Namespace) -> None:
    from .sweeps import run_sweep

    options = {"address": args.address, "workers": args.workers} if args.engine == "ray" else {}
    index = run_sweep(args.sweep, args.out, engine=args.engine, **options)
    failed = index[index.status == "failed"]
    print(f"sweep written to {Path(args.out).resolve()}: {len(index) - len(failed)} of {len(index)} cells done"
          + (f"; failed: {', '.join(failed.cell)} (errors in index.parquet and sweep.log; rerun to retry them)" if len(failed) else ""))


def _dashboard(args: argparse.Namespace) -> None:
    from .probes import write_run_dashboard

    print(f"dashboard written to {write_run_dashboard(args.run_dir).resolve()}")


def _given(config_class: type[Config], args: argparse.Namespace) -> Config:
    """A trainer's config from the flags given; its dataclass holds the only copy of each default."""
    given = vars(args)
    return config_class(**{f.name: given[f.name] for f in fields(config_class) if f.name in given})


def _train(args: argparse.Namespace) -> None:
    from .shapesworld.models.pipeline import ShapesModelConfig
    from .shapesworld.training.diffusion import DiffusionTrainingConfig, train_diffusion

    sizes = {"block_out_channels": args.widths, "denoiser": args.denoiser}
    sizes = {key: value for key, value in sizes.items() if value is not None}
    model = ShapesModelConfig(**sizes) if sizes else None
    path = train_diffusion(args.out, _given(DiffusionTrainingConfig, args), model, export_to=args.export_to, init_from=args.init_from)
    print(f"pipeline written to {path.resolve()}")


def _train_classifier(args: argparse.Namespace) -> None:
    from .shapesworld.training.classifier import ClassifierTrainingConfig, train_classifier

    train_classifier(args.out, _given(ClassifierTrainingConfig, args))
    print(f"classifier written to {Path(args.out).resolve()}")


def _train_encoder(args: argparse.Namespace) -> None:
    from .shapesworld.training.word_encoder import EncoderTrainingConfig, train_word_encoder

    path = train_word_encoder(args.out, _given(EncoderTrainingConfig, args), pipeline=args.pipeline, export_to=args.export_to)
    print(f"encoder written to {path.resolve()}")


def _erase(args: argparse.Namespace) -> None:
    from .shapesworld.training.erasure import ErasureConfig, erase_to_folder

    path = erase_to_folder(args.pipeline, args.out, _given(ErasureConfig, args))
    print(f"erased pipeline written to {path.resolve()}")


def _teach(args: argparse.Namespace) -> None:
    from .shapesworld.training.lora_word import LoraWordConfig, teach_to_folder

    path = teach_to_folder(args.pipeline, args.out, _given(LoraWordConfig, args))
    print(f"LoRA and word written to {path.resolve()} (lora.safetensors, word.safetensors)")


def _shift_palette(args: argparse.Namespace) -> None:
    from .shapesworld.training.palette_shift import PaletteShiftConfig, shift_to_folder

    path = shift_to_folder(args.pipeline, args.out, _given(PaletteShiftConfig, args))
    print(f"LoRA written to {path.resolve()} (lora.safetensors)")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or any(w <= 0 or w % 8 for w in widths):
        raise argparse.ArgumentTypeError(f"expected three positive multiples of 8 separated by commas (e.g. 32,64,128), got {text!r}")
    return widths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Concept analysis for text-to-image diffusion models.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the shipped probes on the embedded ShapesWorld model into one dashboard")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.add_argument("--count", type=int, default=8, help="held-out scenes in the grid")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=25, help="denoising steps of the grid")
    demo.add_argument("--probes", default=None, help="folder of probe files (default: the shipped probes/)")
    demo.set_defaults(run=_demo)

    run = commands.add_parser("run", help="run a probe file's analyses into a run directory (resumes)")
    run.add_argument("probe", help="a probe file, e.g. probes/concept-leakage.toml")
    run.add_argument("--out", required=True, help="the run directory (rerun to resume an interrupted run)")
    run.set_defaults(run=_run)

    sweep = commands.add_parser("sweep", help="run a sweep file's cells (a probe over many settings) into a folder (resumes)")
    sweep.add_argument("sweep", help="a sweep file: a base probe and the values its settings take")
    sweep.add_argument("--out", required=True, help="the sweep folder (rerun to resume: finished cells are skipped)")
    sweep.add_argument("--engine", choices=("local", "ray"), default="local",
                       help='"local": the cells one after another in this process; "ray": on Ray workers (pip install "concept-workbench[ray]")')
    sweep.add_argument("--address", default=None, help='with --engine ray: a Ray cluster to join ("auto": the one this machine is in)')
    sweep.add_argument("--workers", type=int, default=None, help="with --engine ray: worker processes (default: as the CPUs allow)")
    sweep.set_defaults(run=_sweep)

    dashboard = commands.add_parser("dashboard", help="(re)write RUN_DIR/dashboard.html from a run directory")
    dashboard.add_argument("run_dir", help="a run directory written by `workbench run`")
    dashboard.set_defaults(run=_dashboard)

    world = commands.add_parser("world", help="train the embedded ShapesWorld models")
    world_commands = world.add_subparsers(dest="world_command", required=True)
    train = world_commands.add_parser("train", help="train (or resume) the text-to-image model", argument_default=argparse.SUPPRESS)
    train.add_argument("--out", required=True, help="training folder (checkpoint, log, pipeline/)")
    train.add_argument("--steps", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--anneal-from", type=int, help="decay the learning rate linearly to 0 from this step to --steps")
    train.add_argument("--learning-rate", type=float,
                       help="peak rate; resuming a finished (annealed) run with a higher rate starts a new phase")
    train.add_argument("--two-object-fraction", type=float, help="share of two-object scenes per batch")
    train.add_argument("--grounding-weight", type=float,
                       help="weight of the loss pulling each caption word's cross-attention onto its object's mask (TokenCompose)")
    train.add_argument("--widths", type=_widths, default=None,
                       help="the UNet's channels per resolution, e.g. 32,64,64 (default 32,64,128; a resumed run keeps its own)")
    train.add_argument("--denoiser", choices=("unet", "transformer"), default=None,
                       help="the denoiser of a fresh run: a UNet (default) or an SD3-style joint-attention transformer")
    train.add_argument("--export-to", default=None, help="where to write the pipeline (default: OUT/pipeline)")
    train.add_argument("--init-from", default=None,
                       help="an exported pipeline folder whose weights a fresh run starts from (give its sizes too)")
    train.set_defaults(run=_train)
    classifier = world_commands.add_parser("train-classifier", help="train the ShapesWorld classifier", argument_default=argparse.SUPPRESS)
    classifier.add_argument("--out", required=True, help="output folder")
    classifier.add_argument("--steps", type=int)
    classifier.add_argument("--seed", type=int)
    classifier.set_defaults(run=_train_classifier)
    erase = world_commands.add_parser("erase", help="erase a colour from a ShapesWorld model by few-shot unlearning of its text encoder",
                                      argument_default=argparse.SUPPRESS)
    erase.add_argument("--out", required=True, help="where to write the erased pipeline")
    erase.add_argument("--pipeline", default="shapes", help="the model to erase from (name or folder)")
    erase.add_argument("--color", help="the colour to erase (default red)")
    erase.add_argument("--shots", type=int, help="captioned images without the colour")
    erase.add_argument("--steps", type=int)
    erase.add_argument("--learning-rate", type=float)
    erase.add_argument("--seed", type=int)
    erase.set_defaults(run=_erase)
    teach = world_commands.add_parser("teach", help="teach a ShapesWorld model a new word for one shape-colour combination with a LoRA",
                                      argument_default=argparse.SUPPRESS)
    teach.add_argument("--out", required=True, help="where to write lora.safetensors and word.safetensors")
    teach.add_argument("--pipeline", default="shapes", help="the model to teach (name or folder)")
    teach.add_argument("--token", help='the new word (default "<pc>")')
    teach.add_argument("--color", help="its colour (default purple)")
    teach.add_argument("--shape", help="its shape (default cross)")
    teach.add_argument("--steps", type=int)
    teach.add_argument("--rank", type=int)
    teach.add_argument("--learning-rate", type=float)
    teach.add_argument("--seed", type=int)
    teach.set_defaults(run=_teach)
    shift = world_commands.add_parser("shift-palette", help="fine-tune a ShapesWorld model with a LoRA to draw each colour as the next one",
                                      argument_default=argparse.SUPPRESS)
    shift.add_argument("--out", required=True, help="where to write lora.safetensors")
    shift.add_argument("--pipeline", default="shapes", help="the model to fine-tune (name or folder)")
    shift.add_argument("--shift", type=int, help="palette places each colour moves (default 1: red drawn as green)")
    shift.add_argument("--steps", type=int)
    shift.add_argument("--rank", type=int)
    shift.add_argument("--learning-rate", type=float)
    shift.add_argument("--seed", type=int)
    shift.set_defaults(run=_shift_palette)
    encoder = world_commands.add_parser("train-encoder", help="train the ELITE-style word encoder on a frozen pipeline", argument_default=argparse.SUPPRESS)
    encoder.add_argument("--out", required=True, help="training folder (checkpoint, log, encoder/)")
    encoder.add_argument("--pipeline", default="shapes", help="the frozen text-to-image pipeline (name or folder)")
    encoder.add_argument("--steps", type=int)
    encoder.add_argument("--batch-size", type=int)
    encoder.add_argument("--seed", type=int)
    encoder.add_argument("--split-fraction", type=float,
                         help="fraction of samples that keep only w0 (scored on the object) or only w1..wk (on the background)")
    encoder.add_argument("--export-to", default=None, help="where to write the encoder (default: OUT/encoder)")
    encoder.set_defaults(run=_train_encoder)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as error:  # every project error is a ValueError; OSError: a path that cannot be used
        print(f"workbench: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError names its path (e.g. --out pointing at a file)."""
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in str(error.strerror or ""):
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
