"""`workbench dashboard RUN_DIR`: figures from a run directory's files, one offline HTML page.

Reads only what the run wrote (Parquet, safetensors, JSON); never loads a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
from safetensors.torch import load_file

from ..capture import AttentionMaps
from ..files import atomic_path
from ..viz import Section, concept_depth_figure, heat_map_figure, matrix_figure, projection_figure, tcav_figure, write_dashboard
from .runner import read_record

HEAT_MAP_PROMPTS = 4  # heat-map figures per run; the tables hold every prompt


def _attention_sections(folder: Path) -> list[Section]:
    summary = json.loads((folder / "part.json").read_text())["summary"]
    maps = AttentionMaps.load(folder / "maps.safetensors")
    images = load_file(str(folder / "images.safetensors"))["images"].numpy()
    groups = {f"finest ({', '.join(summary['heat_layers'])})": summary["heat_layers"], "all layers": None,
              **{g: [g] for g in sorted({layer.group for layer in maps.select()})}}
    sections = [
        Section(f"Heat maps: {maps.tokens.texts[p]}", heat_map_figure(images[p], maps, prompt=p, layer_groups=groups),
                "Choose the word and the layers in the menu; brighter means more of the word's attention.")
        for p in range(min(HEAT_MAP_PROMPTS, len(images)))
    ]
    leakage = pd.read_parquet(folder / "leakage.parquet")
    if len(leakage):
        region_object = leakage.region.map(lambda r: -1 if r == "background" else int(r.split()[1]) - 1)
        kind = np.select([leakage.region == "background", region_object == leakage.object], ["background", "own object"], "other object")
        table = leakage.assign(kind=kind).groupby(["role", "kind"]).mass.mean().unstack("kind").reindex(columns=["own object", "other object", "background"])
        sections.append(Section(
            "Where attention mass goes, by word role", matrix_figure(table.to_numpy(), list(table.index), list(table.columns), "mean fraction of attention mass", 0, 1),
            "Rows: the role of the word in the caption. A word that localises puts its mass on its own object; "
            "mass on the other object is leakage between concepts, mass on the background is leakage into the scene.",
        ))
        localisation = pd.read_parquet(folder / "localisation.parquet")
        by_role = localisation.groupby("role").iou.mean()
        sections.append(Section("Localisation (DAAM IoU at threshold 0.4)",
                                px.bar(by_role.reset_index(), x="role", y="iou", range_y=[0, 1], title="mean IoU with the named region")))
    overlap = pd.read_parquet(folder / "overlap.parquet")
    first = overlap[overlap.prompt == 0]
    if len(first):
        words = list(dict.fromkeys(list(first.word_a) + list(first.word_b)))
        matrix = np.eye(len(words))
        for row in first.itertuples():
            i, j = words.index(row.word_a), words.index(row.word_b)
            matrix[i, j] = matrix[j, i] = row.soft_iou
        sections.append(Section(f"Word overlap (soft IoU): {maps.tokens.texts[0]}", matrix_figure(matrix, words, words, "soft IoU between heat maps", 0, 1)))
    return sections


def _primary_auxiliary_sections(folder: Path) -> list[Section]:
    probes = pd.read_parquet(folder / "probe_leakage.parquet")
    table = probes.pivot(index="representation", columns="factor", values="above_chance")
    cosine = pd.read_parquet(folder / "cosine.parquet").set_index("word")
    words = pd.read_parquet(folder / "words.parquet")
    scores = json.loads((folder / "disentanglement.json").read_text())
    return [
        Section("Which word carries which factor (probe accuracy above chance)",
                matrix_figure(table.to_numpy(), list(table.index), list(table.columns), "linear-probe accuracy above chance"),
                "A primary word should carry the object; a factor read from an auxiliary word the encoder should not put there is informational leakage. "
                + "Scores over all words: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())),
        Section("Cosine similarity between the learned words", matrix_figure(cosine.to_numpy(), list(cosine.index), list(cosine.columns), "cosine", -1, 1)),
        Section("Attention on the drawn object, per word",
                px.box(words, x="word", y="object_mass", range_y=[0, 1], title="fraction of each word's attention on the object")),
    ]


def _tcav_sections(folder: Path) -> list[Section]:
    frame = pd.read_parquet(folder / "scores.parquet")
    return [
        Section("TCAV scores", tcav_figure(frame), "Faded bars marked n.s. are not significant after Bonferroni correction."),
        Section("Concept depth", concept_depth_figure(frame)),
    ]


def _projection_sections(folder: Path) -> list[Section]:
    points = pd.read_parquet(folder / "points.parquet")
    color = "word" if "word" in points.columns else "kind"
    return [Section("UMAP projection", projection_figure(points, color=color))]


SECTIONS = {"attention": _attention_sections, "primary_auxiliary": _primary_auxiliary_sections,
            "tcav": _tcav_sections, "projection": _projection_sections}


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
            sections.extend(build(run_dir / name))
    for i, section in enumerate(sections):
        with atomic_path(run_dir / "figures" / f"{i:02d}.json") as tmp:
            tmp.write_text(section.figure.to_json())
    return record, sections


def run_settings(record: dict) -> dict:
    """What the dashboard shows of a run's record: settings, versions, seconds per part."""
    return {**record["settings"], "versions": record["versions"], "seconds": {n: p["seconds"] for n, p in record["parts"].items()}}


def write_run_dashboard(run_dir: str | Path) -> Path:
    """Write RUN_DIR/dashboard.html (and RUN_DIR/figures/*.json) from the finished parts."""
    record, sections = run_sections(run_dir)
    title = f"{record['settings']['name']}: {record['settings']['description']}"
    return write_dashboard(Path(run_dir) / "dashboard.html", title, sections, run_settings(record))
