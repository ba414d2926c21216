"""`workbench dashboard RUN_DIR`: figures from a run directory's files, one offline HTML page.

Reads only what the run wrote (Parquet, safetensors, JSON); never loads a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..capture import AttentionMaps
from ..files import atomic_path
from ..analyses.summaries import leakage_summary, localisation_summary
from ..viz import (
    Section,
    concept_depth_figure,
    diff_figure,
    gallery_figure,
    heat_map_figure,
    leakage_figure,
    localisation_figure,
    matrix_figure,
    projection_figure,
    tcav_figure,
    word_change_figure,
    write_dashboard,
)
from .record import RunDirectoryError, read_record


def _attention_sections(folder: Path) -> list[Section]:
    summary = json.loads((folder / "part.json").read_text())["summary"]
    maps = AttentionMaps.load(folder / "maps.safetensors")
    images = load_file(str(folder / "images.safetensors"))["images"].numpy()
    # two layer choices keep the page light; heat_map_figure(layer_groups=...) in a notebook shows any block
    groups = {f"finest ({', '.join(summary['heat_layers'])})": summary["heat_layers"], "all layers": None}
    output = summary.get("maps") == "output"
    title, note = ("Concept maps (attention-output space)", "Choose the prompt, the concept and the layers in the menus; brighter "
                   "means the image position's attention output is closer to the concept's than to the other concepts'.") if output else (
                   "Heat maps", "Choose the prompt, the word and the layers in the menus (articles and prepositions are left out); brighter means more of the word's attention.")
    texts = maps.tokens.texts
    sections = [
        Section(f"Generated images ({len(images)})", gallery_figure(images, texts), "Every image the run generated, with its prompt."),
        Section(title, heat_map_figure(images, maps, layer_groups=groups, menu=False, function_words=False), note + " Left: the image, with the heat map over it at "
                "the opacity the slider sets; right: the heat map alone, its colour bar in attention probability."),
    ]
    if (folder / "concept_maps.safetensors").exists():
        concepts = AttentionMaps.load(folder / "concept_maps.safetensors")
        sections.append(Section("Concept maps (attention-output space)", heat_map_figure(images, concepts, layer_groups={"all joint layers": None}, menu=False),
                                "Beside the raw maps: each concept's map in attention-output space (ConceptAttention), a distribution over the concepts."))
    leakage = pd.read_parquet(folder / "leakage.parquet")
    if not len(leakage):
        sections.append(Section("Leakage and localisation: not scored", None,
                                f"This run has {summary.get('regions', 'no regions')}. Leakage and localisation need to know where each "
                                "word should attend: give [inputs] masks = \"folder\" with one mask per prompt and region "
                                "(files <prompt>_<region>.png, see workbench.analyses.regions), or use the embedded ShapesWorld model, "
                                "whose captions' regions are known."))
    else:
        sections.append(Section(
            "Where attention mass goes, by word role", leakage_figure(leakage_summary(leakage)),
            "Rows: the role of the word; columns: its own region, the other regions (together), the background; for the "
            "background word, each object apart. Each cell: the mean fraction of the word's attention mass there, the chance "
            "level (the region's share of the image, what a uniform map puts there), the excess over chance with its 95% "
            "bootstrap interval, and n words. Red: more than chance; blue: less. A word that localises has a large excess on "
            "its own region; mass above chance elsewhere is leakage.",
        ))
        localisation = pd.read_parquet(folder / "localisation.parquet")
        sections.append(Section("Localisation (DAAM IoU at threshold 0.4)", localisation_figure(localisation_summary(localisation)),
                                "Mean IoU of each word's thresholded heat map with its region, with its 95% bootstrap interval and n "
                                "words; the mark beside each bar is chance, the IoU of a map covering the whole image."))
    overlap = pd.read_parquet(folder / "overlap.parquet")
    first = overlap[overlap.prompt == 0]
    if len(first):
        label = lambda word, occurrence: word if occurrence == 0 else f"{word} ({occurrence + 1})"  # noqa: E731 - repeated words apart
        pairs = [(label(r.word_a, r.occurrence_a), label(r.word_b, r.occurrence_b), r.soft_iou) for r in first.itertuples()]
        words = list(dict.fromkeys([a for a, _, _ in pairs] + [b for _, b, _ in pairs]))
        matrix = np.eye(len(words))
        for a, b, value in pairs:
            i, j = words.index(a), words.index(b)
            matrix[i, j] = matrix[j, i] = value
        sections.append(Section(f"Word overlap (soft IoU): {maps.tokens.texts[0]}", matrix_figure(matrix, words, words, "soft IoU between heat maps", 0, 1),
                                "A repeated word is labelled by its occurrence, e.g. \"a (2)\" for the second \"a\"."))
    return sections


def _primary_auxiliary_sections(folder: Path) -> list[Section]:
    cosine = pd.read_parquet(folder / "cosine.parquet").set_index("word")
    words = pd.read_parquet(folder / "words.parquet")
    n_examples = int(words.image.nunique())
    absent_file = folder / "absent.json"
    absent = json.loads(absent_file.read_text()) if absent_file.is_file() else {}
    sections = []
    if (folder / "probe_leakage.parquet").is_file():
        probes = pd.read_parquet(folder / "probe_leakage.parquet")
        table = probes.pivot(index="representation", columns="factor", values="above_chance")
        scores = json.loads((folder / "disentanglement.json").read_text()) or {}
        held_out = int(probes.n_test.iloc[0]) if "n_test" in probes.columns else None
        widest = float((probes.accuracy_high - probes.accuracy_low).max() / 2) if held_out else float("nan")
        evidence = (f" Each accuracy is measured on {held_out} held-out examples of {n_examples}; its 95% Wilson interval is at most "
                    f"+-{widest:.2f} wide." if held_out else "")
        sections.append(Section(
            f"Which word carries which factor (probe accuracy above chance, n = {held_out or n_examples})",
            matrix_figure(table.to_numpy(), list(table.index), list(table.columns), "linear-probe accuracy above chance"),
            "A primary word should carry the object; a factor read from an auxiliary word the encoder should not put there is informational leakage."
            + evidence + " Scores over all words: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())))
    sections.append(Section(f"Cosine similarity between the learned words (mean over {n_examples} examples)",
                            matrix_figure(cosine.to_numpy(), list(cosine.index), list(cosine.columns), "cosine", -1, 1)))
    if words.object_mass.notna().any():
        counts = words.dropna(subset=["object_mass"]).groupby("word").size()
        sections.append(Section(f"Attention on the drawn object, per word (n = {int(counts.min())} images each)" if counts.nunique() == 1
                                else "Attention on the drawn object, per word",
                                px.box(words, x="word", y="object_mass", range_y=[0, 1], points="all", title="fraction of each word's attention on the object"),
                                "Each point is one generated image; the box spans the middle half, the line is the median."))
    for what, why in absent.items():
        sections.append(Section(f"{what.replace('_', ' ')}: not computed", None, why))
    return sections


def _tcav_sections(folder: Path) -> list[Section]:
    frame = pd.read_parquet(folder / "scores.parquet")
    runs = json.loads((folder / "part.json").read_text())["summary"].get("random_runs", "R")
    return [
        Section("TCAV scores", tcav_figure(frame), f"Each bar: the mean sign-count score over the {runs} random sets, +- its standard "
                "deviation; beside it the random-vs-random baseline. Faded bars marked n.s. are not significant after Bonferroni "
                f"correction over the {len(frame)} tests."),
        Section("Concept depth", concept_depth_figure(frame)),
    ]


def _diff_sections(folder: Path) -> list[Section]:
    against = json.loads((folder / "against.json").read_text())
    words = pd.read_parquet(folder / "words.parquet")
    embeddings = pd.read_parquet(folder / "embeddings.parquet")
    images = load_file(str(folder / "images.safetensors"))
    base = AttentionMaps.load(folder / "maps-base.safetensors")
    sections = []
    for k, name in enumerate(against["names"]):
        other = AttentionMaps.load(folder / f"maps-{k}.safetensors")
        pair = (images["base"].numpy(), images[f"against-{k}"].numpy())
        differences = against["differences"].get(name) or []
        sections.append(Section(f"Base | {name} | difference", diff_figure(pair, (base, other), ("base", name)),
                                "The same prompts and seed in both models; choose the prompt and word in the menu. Red: the word "
                                "attends there more in the other model, blue: less." + (" Differences between the pipelines: "
                                + "; ".join(differences) + "." if differences else "")))
        chosen = words[words.against == name]
        sections.append(Section(f"Which words changed: base against {name}", word_change_figure(chosen),
                                "Per word, the mean over its prompts of 1 - the overlap of its two heat maps (as distributions) and "
                                "1 - the cosine of its two text-encoder outputs; 0 means unchanged."))
        table = embeddings[embeddings.against == name]
        sections.append(Section(f"Token embeddings: base against {name}", px.bar(table, x="word", y="cosine", range_y=[-1, 1.05],
                                hover_data=["norm_base", "norm_other", "nearest_base", "nearest_other"],
                                title="cosine of each word's token embedding in the two text encoders"),
                                "1: the word's input embedding is unchanged; hover for its norms and nearest vocabulary tokens in each model."))
    return sections


def _projection_sections(folder: Path) -> list[Section]:
    points = pd.read_parquet(folder / "points.parquet")
    color = "word" if "word" in points.columns else "kind"
    return [Section("UMAP projection", projection_figure(points, color=color))]


SECTIONS = {"attention": _attention_sections, "primary_auxiliary": _primary_auxiliary_sections,
            "tcav": _tcav_sections, "diff": _diff_sections, "projection": _projection_sections}


def run_sections(run_dir: str | Path) -> tuple[dict, list[Section]]:
    """The run's record and a dashboard section per figure of its finished parts; the figures
    are also written to RUN_DIR/figures/NN.json.

    Raises:
        FileNotFoundError, RunDirectoryError: not a run directory of this format.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    sections: list[Section] = []
    for name, build in SECTIONS.items():
        if (run_dir / name / "part.json").is_file():
            try:
                sections.extend(build(run_dir / name))
            except (OSError, ValueError, KeyError, SafetensorError) as error:  # a part's files, edited or cut short
                raise RunDirectoryError(f"{run_dir / name} is damaged ({type(error).__name__}: {error}); delete that folder and "
                                        "rerun `workbench run` with the same probe to recompute it") from None
    for i, section in enumerate(sections):
        if section.figure is None:
            continue
        with atomic_path(run_dir / "figures" / f"{i:02d}.json") as tmp:
            tmp.write_text(section.figure.to_json())
    return record, sections


SCENE_INPUTS = ("scenes", "objects", "split")


def run_settings(record: dict) -> dict:
    """What the dashboard shows of a run's record: the settings the run used (unset options
    left out, the inputs it actually had), the model as run, versions, seconds per part."""
    settings = {key: value for key, value in record["settings"].items()}
    inputs = {k: v for k, v in settings.get("inputs", {}).items() if v not in (None, [], "")}
    if inputs.get("prompts"):
        inputs = {k: v for k, v in inputs.items() if k not in SCENE_INPUTS}
    elif not inputs.get("scenes"):
        inputs = {}
    settings["inputs"] = inputs
    settings["model"] = {k: v for k, v in settings.get("model", {}).items() if v not in (None, [])}
    return {**settings, "model as run": record.get("model", {}), "versions": record["versions"],
            "seconds": {n: p["seconds"] for n, p in record["parts"].items()}}


def write_run_dashboard(run_dir: str | Path) -> Path:
    """Write RUN_DIR/dashboard.html (and RUN_DIR/figures/*.json) from the finished parts."""
    record, sections = run_sections(run_dir)
    title = f"{record['settings']['name']}: {record['settings']['description']}"
    return write_dashboard(Path(run_dir) / "dashboard.html", title, sections, run_settings(record))
