"""The command line: thin wiring of the public API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    path = run_demo(args.out, count=args.count, seed=args.seed, steps=args.steps)
    print(f"demo written to {path.resolve()}")


def _train(args: argparse.Namespace) -> None:
    from .training.diffusion import DiffusionTrainingConfig, train_diffusion

    cfg = DiffusionTrainingConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    path = train_diffusion(args.out, cfg, export_to=args.export_to)
    print(f"pipeline written to {path.resolve()}")


def _train_classifier(args: argparse.Namespace) -> None:
    from .training.classifier import ClassifierTrainingConfig, train_classifier

    train_classifier(args.out, ClassifierTrainingConfig(steps=args.steps, seed=args.seed))
    print(f"classifier written to {Path(args.out).resolve()}")


def _train_encoder(args: argparse.Namespace) -> None:
    from .training.word_encoder import EncoderTrainingConfig, train_word_encoder

    cfg = EncoderTrainingConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    path = train_word_encoder(args.out, cfg, pipeline=args.pipeline, export_to=args.export_to)
    print(f"encoder written to {path.resolve()}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Concept analysis for text-to-image diffusion models.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="draw held-out ShapesWorld scenes next to the embedded model's images")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.add_argument("--count", type=int, default=8, help="number of scenes")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=25, help="denoising steps")
    demo.set_defaults(run=_demo)

    world = commands.add_parser("world", help="train the embedded ShapesWorld models")
    world_commands = world.add_subparsers(dest="world_command", required=True)
    train = world_commands.add_parser("train", help="train (or resume) the text-to-image model")
    train.add_argument("--out", required=True, help="training folder (checkpoint, log, pipeline/)")
    train.add_argument("--steps", type=int, default=20000)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--export-to", default=None, help="where to write the pipeline (default: OUT/pipeline)")
    train.set_defaults(run=_train)
    classifier = world_commands.add_parser("train-classifier", help="train the ShapesWorld classifier")
    classifier.add_argument("--out", required=True, help="output folder")
    classifier.add_argument("--steps", type=int, default=1200)
    classifier.add_argument("--seed", type=int, default=0)
    classifier.set_defaults(run=_train_classifier)
    encoder = world_commands.add_parser("train-encoder", help="train the ELITE-style word encoder on a frozen pipeline")
    encoder.add_argument("--out", required=True, help="training folder (checkpoint, log, encoder/)")
    encoder.add_argument("--pipeline", default="shapes", help="the frozen text-to-image pipeline (name or folder)")
    encoder.add_argument("--steps", type=int, default=3000)
    encoder.add_argument("--batch-size", type=int, default=32)
    encoder.add_argument("--seed", type=int, default=0)
    encoder.add_argument("--export-to", default=None, help="where to write the encoder (default: OUT/encoder)")
    encoder.set_defaults(run=_train_encoder)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
