"""Probes on a user's Stable Diffusion: a folder with learned-word files in each format, masks
for leakage, a pipeline object already in memory, and refusals before anything is written."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from workbench.pipelines.embeddings import insert_embeddings, read_embeddings
from workbench.pipelines.random_pipelines import build_random_pipeline, save_random_pipeline
from workbench.probes import ProbeError, parse_probe, run_probe

pytestmark = pytest.mark.slow  # whole probes on random-weight SD and SDXL folders

WIDTH = 32  # the random pipelines' text width
PROMPTS = ["a <cat-toy> on a sofa, a dog", "mystyle of a S* and a kword"]


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """An SD 1.5-architecture folder (BPE tokenizer) and learned words in four formats."""
    root = tmp_path_factory.mktemp("user")
    pipeline = save_random_pipeline("sd15", root, tokenizer="bpe", sample_size=8)  # 64 px by default
    save_file({"<cat-toy>": torch.randn(WIDTH)}, root / "learned_embeds.safetensors")
    torch.save({"S*": torch.randn(3, WIDTH)}, root / "learned_embeds.bin")
    torch.save({"string_to_param": {"*": torch.randn(2, WIDTH)}, "name": "mystyle"}, root / "a1111.pt")
    save_file({"emb_params": torch.randn(1, WIDTH)}, root / "kword.safetensors")  # kohya: the token is the file's stem
    return root, pipeline


def probe_text(pipeline, root, extra_model="", extra_inputs="", sections="[attention]\n"):
    files = [root / "learned_embeds.safetensors", root / "learned_embeds.bin", root / "a1111.pt", root / "kword.safetensors"]
    return (
        f'name = "mine"\nseed = 3\n[model]\npipeline = "{pipeline}"\nembeddings = {json.dumps([str(f) for f in files])}\n'
        f'steps = 2\nheight = 64\nwidth = 64\nnegative_prompt = "blurry"\n{extra_model}'
        f"[inputs]\nprompts = {json.dumps(PROMPTS)}\n{extra_inputs}{sections}"
    )


def write_masks(folder, names_by_prompt, size=64):
    folder.mkdir()
    for prompt, names in names_by_prompt.items():
        for i, name in enumerate(names):
            mask = np.zeros((size, size), np.uint8)
            mask[:, i * 16 : (i + 1) * 16] = 255  # disjoint vertical bands
            Image.fromarray(mask).save(folder / f"{prompt}_{name}.png")
    return folder


def test_a_probe_on_a_folder_with_learned_words_and_masks(user_files, tmp_path):
    root, pipeline = user_files
    # masks name words without the characters file names cannot hold: <cat-toy> -> cat-toy, S* -> S
    masks = write_masks(tmp_path / "masks", {0: ["cat-toy", "dog", "background"], 1: ["S", "mystyle"]})
    text = probe_text(pipeline, root, extra_inputs=f'masks = "{masks}"\n', sections="[attention]\n[projection]\nneighbors = 5\n")
    (tmp_path / "mine.toml").write_text(text)
    run = run_probe(tmp_path / "mine.toml", tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    model = record["model"]
    assert model["generation"]["guidance_scale"] == 7.5  # Stable Diffusion's own default
    assert model["generation"]["negative_prompt"] == "blurry" and model["generation"]["height"] == 64
    assert [e["sha256"] for e in model["embeddings"]] and all(len(e["sha256"]) == 64 for e in model["embeddings"])
    assert {"<cat-toy>", "S*", "S*_1", "mystyle", "kword"} <= set(model["learned_tokens"])
    leakage = pd.read_parquet(run / "attention" / "leakage.parquet")
    cat = leakage[leakage.word == "<cat-toy>"]
    assert set(cat.region) == {"cat-toy", "dog", "background"} and set(cat.own_region) == {"cat-toy"}
    assert np.allclose(cat.area, 0.25) and 0 < cat.mass.sum() <= 1 + 1e-6  # three disjoint bands of a quarter each
    localisation = pd.read_parquet(run / "attention" / "localisation.parquet")
    assert {"<cat-toy>", "dog", "S*", "mystyle"} == set(localisation.word)
    points = pd.read_parquet(run / "projection" / "points.parquet")
    assert "learned word" in set(points.kind)
    page = (run / "dashboard.html").read_text()
    assert "Where attention mass goes" in page and "&lt;cat-toy&gt;" in page
    assert '"scenes"' not in page  # the inputs table shows the inputs the run had


def test_a_probe_on_a_pipeline_in_memory(tmp_path):
    pipe = build_random_pipeline("sd15", tmp_path, tokenizer="bpe")  # plain diffusers, built by the user
    pipe.set_progress_bar_config(disable=True)
    save_file({"<cat-toy>": torch.randn(WIDTH)}, tmp_path / "cat.safetensors")
    insert_embeddings(pipe, read_embeddings(tmp_path / "cat.safetensors"))
    probe = parse_probe('name = "notebook"\n[model]\nsteps = 2\nheight = 64\nwidth = 64\n'
                        '[inputs]\nprompts = ["a <cat-toy> on a sofa"]\n[attention]\n', "notebook")
    run = run_probe(probe, tmp_path / "run", pipe=pipe)
    record = json.loads((run / "run.json").read_text())
    assert record["model"]["in_memory"] and record["model"]["class"] == "StableDiffusionPipeline"
    assert record["settings"]["model"]["pipeline"] == "in memory: StableDiffusionPipeline"
    assert "&lt;cat-toy&gt;" in (run / "dashboard.html").read_text()
    page = (run / "dashboard.html").read_text()
    assert "Leakage and localisation: not scored" in page and "masks" in page  # says why, not silently dropped
    assert (run / "probe.toml").read_text().startswith('name = "notebook"')


def test_sdxl_folder_with_a_two_encoder_word(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pipeline = save_random_pipeline("sdxl", tmp_path, tokenizer="bpe", sample_size=8)
    save_file({"clip_l": torch.randn(2, WIDTH), "clip_g": torch.randn(2, WIDTH)}, tmp_path / "mv.safetensors")
    (tmp_path / "concept.txt").write_text("a mv dog\na mv on a sofa\nmv in a garden\n")
    (tmp_path / "pool.txt").write_text("\n".join(f"a photo of thing {i}" for i in range(9)))
    (tmp_path / "target.py").write_text("def brightness(images):\n    return images.float().mean((1, 2, 3))\n")
    for name in ("p1", "p2"):  # learned words as the examples of [primary_auxiliary], two vectors in each encoder
        save_file({"clip_l": torch.randn(2, WIDTH), "clip_g": torch.randn(2, WIDTH)}, tmp_path / f"{name}.safetensors")
    (tmp_path / "xl.toml").write_text(
        f'name = "xl"\n[model]\npipeline = "{pipeline}"\nembeddings = ["mv.safetensors"]\nsteps = 2\n'
        '[inputs]\nprompts = ["a mv dog"]\n[attention]\n'
        '[tcav]\ntarget = "target.py:brightness"\nconcepts = ["prompts:concept.txt", "prompts:pool.txt"]\nrandom_pool = "prompts:pool.txt"\n'
        'explained = "prompts:concept.txt"\nlayers = ["unet.mid_block", "text_encoder_2.text_model.encoder.layers.0"]\nexamples = 3\nrandom_runs = 3\n'
        '[primary_auxiliary]\nembeddings = ["p1.safetensors", "p2.safetensors"]\n')
    run = run_probe(Path("xl.toml"), Path("run"), dashboard=False)
    record = json.loads((run / "run.json").read_text())
    assert record["model"]["generation"]["guidance_scale"] == 5.0  # SDXL's own default
    assert {"mv", "mv_1"} <= set(record["model"]["learned_tokens"])
    scores = pd.read_parquet(run / "tcav" / "scores.parquet")
    assert set(scores.layer) == {"unet.mid_block", "text_encoder_2.text_model.encoder.layers.0"} and scores.score.between(0, 1).all()
    words = load_file(str(run / "primary_auxiliary" / "words.safetensors"))
    assert words["words"].shape == (2, 2, 2 * WIDTH) and words["generated"].shape[0] == 2  # both encoders' vectors, side by side
    assert pd.read_parquet(run / "primary_auxiliary" / "words.parquet").word.tolist() == ["w0", "w1"] * 2


@pytest.mark.parametrize("change, message", [
    (lambda t: t + "[tcav]\n", r"\[tcav\] target, concepts \('color=red'\), concepts \('color=blue'\), random_pool, explained: "
                                "this StableDiffusionPipeline is not an embedded world's model"),
    (lambda t: t + '[tcav]\ntarget = "missing.py:f"\nconcepts = ["prompts:x.txt", "prompts:y.txt"]\nrandom_pool = "prompts:x.txt"\n'
                   'explained = "prompts:x.txt"\n', r"\[tcav\] target 'missing.py:f': missing.py does not exist"),
    (lambda t: t + "[primary_auxiliary]\n", r"\[primary_auxiliary\] encodes the embedded world's scenes by default"),
    (lambda t: t.replace("[inputs]\n", '[inputs]\nmasks = "MASKS"\n'), r"no masks for prompt\(s\) \[1\]"),
    (lambda t: t.replace("a1111.pt", "wide.safetensors"), r"'<wide>' \(from .*wide.safetensors\) has width 768"),
    (lambda t: t.replace('pipeline = "', 'pipeline = "/nowhere'), "neither an embedded model"),
    (lambda t: t.replace("[inputs]\n", "use_resolution_binning = false\n[inputs]\n"),
     r"\[model\] StableDiffusionPipeline does not take use_resolution_binning; leave it unset"),
])
def test_what_cannot_run_is_refused_before_anything_is_written(user_files, tmp_path, change, message):
    root, pipeline = user_files
    save_file({"<wide>": torch.randn(768)}, tmp_path / "wide.safetensors")
    text = change(probe_text(pipeline, root)).replace(str(root / "wide.safetensors"), str(tmp_path / "wide.safetensors"))
    text = text.replace("MASKS", str(write_masks(tmp_path / "masks", {0: ["dog"]})))
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ProbeError, match=message):
        run_probe(tmp_path / "p.toml", tmp_path / "run")
    assert not (tmp_path / "run").exists()  # so the corrected probe runs into the same folder


def test_tcav_on_a_folder_with_the_users_concepts_and_target(user_files, tmp_path, monkeypatch):
    root, pipeline = user_files
    monkeypatch.chdir(tmp_path)  # sources are named relative to where the probe runs
    (tmp_path / "cats.txt").write_text("a photo of a cat\na <cat-toy> on a sofa\na small cat\n")
    (tmp_path / "pool.txt").write_text("\n".join(f"a photo of thing {i}" for i in range(12)))
    (tmp_path / "explained.txt").write_text("a red cat\na blue dog\n")
    (tmp_path / "stripes").mkdir()
    for i in range(3):
        stripes = np.zeros((40, 40, 3), np.uint8)
        stripes[:, i::4] = 255
        Image.fromarray(stripes).save(tmp_path / "stripes" / f"{i}.png")
    (tmp_path / "target.py").write_text("def redness(images):\n    return images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))\n")
    text = probe_text(pipeline, root, sections=(
        '[tcav]\ntarget = "target.py:redness"\nconcepts = ["prompts:cats.txt", "images:stripes"]\nrandom_pool = "prompts:pool.txt"\n'
        'explained = "prompts:explained.txt"\nlayers = ["unet.mid_block", "text_encoder.encoder.layers.1"]\nexamples = 3\nrandom_runs = 3\n'))
    (tmp_path / "t.toml").write_text(text)
    run = run_probe(Path("t.toml"), Path("run"))
    scores = pd.read_parquet(run / "tcav" / "scores.parquet")
    assert set(scores.concept) == {"cats.txt", "stripes"} and set(scores.layer) == {"unet.mid_block", "text_encoder.encoder.layers.1"}
    assert scores.score.between(0, 1).all() and "TCAV scores" in (run / "dashboard.html").read_text()


def test_primary_auxiliary_with_an_elite_checkpoint_and_learned_word_files(user_files, tmp_path, monkeypatch):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from workbench.pipelines.loading import load_pipeline

    from ..pipelines.test_elite import elite_checkpoint

    root, pipeline = user_files
    monkeypatch.chdir(tmp_path)
    elite_checkpoint(load_pipeline(pipeline).unet, tmp_path / "global_mapper.pt", n_words=2)
    CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=8, intermediate_size=16, num_hidden_layers=24,
                                     num_attention_heads=2)).save_pretrained(tmp_path / "vision")
    (tmp_path / "photos").mkdir()
    for i in range(3):
        Image.new("RGB", (48, 40), (60 * i, 120, 30)).save(tmp_path / "photos" / f"{i}.jpg")
    pd.DataFrame({"colour": ["a", "b", "c"]}).to_csv(tmp_path / "labels.csv", index=False)
    text = (f'name = "elite"\n[model]\npipeline = "{pipeline}"\nsteps = 2\n'
            '[primary_auxiliary]\nencoder = "elite:global_mapper.pt"\nvision = "vision"\nmapper_hidden = 16\nimage_folder = "photos"\n'
            'labels = "labels.csv"\n[projection]\nbank = "learned-words"\nneighbors = 2\n')
    (tmp_path / "elite.toml").write_text(text)
    run = run_probe(Path("elite.toml"), Path("run"))
    summary = json.loads((run / "run.json").read_text())["parts"]["primary_auxiliary"]["summary"]
    assert summary["words"] == ["w0", "w1"] and summary["examples"] == 3
    assert "no object masks given" in summary["absent"]["object_mass"] and "3 examples" in summary["absent"]["probes"]
    page = (run / "dashboard.html").read_text()
    assert "object mass: not computed" in page and "Cosine similarity between the learned words" in page
    # learned-word files as the words
    for i in range(2):
        save_file({"emb_params": torch.randn(2, WIDTH)}, tmp_path / f"w{i}.safetensors")
    (tmp_path / "files.toml").write_text(f'name = "files"\n[model]\npipeline = "{pipeline}"\nsteps = 2\n'
                                         '[primary_auxiliary]\nembeddings = ["w0.safetensors", "w1.safetensors"]\n')
    run = run_probe(Path("files.toml"), Path("run-files"), dashboard=False)
    assert pd.read_parquet(run / "primary_auxiliary" / "words.parquet").word.tolist() == ["w0", "w1"] * 2
    # what cannot run is refused before anything is written
    (tmp_path / "bad.toml").write_text(f'name = "bad"\n[model]\npipeline = "{pipeline}"\n[primary_auxiliary]\n')
    with pytest.raises(ProbeError, match=r"\[primary_auxiliary\] encodes the embedded world's scenes by default"):
        run_probe(Path("bad.toml"), Path("run-bad"))
    (tmp_path / "bad.toml").write_text(text.replace('labels = "labels.csv"', 'masks = "vision"'))  # not mask images
    with pytest.raises(ProbeError, match=r"expected object masks named <index>.png"):
        run_probe(Path("bad.toml"), Path("run-bad"))
    assert not (tmp_path / "run-bad").exists()


def test_regions_found_without_labels(tmp_path):
    pipe = build_random_pipeline("sd15", tmp_path, tokenizer="bpe", sample_size=8)
    pipe.set_progress_bar_config(disable=True)
    probe = parse_probe('name = "unsupervised"\n[model]\nsteps = 2\n[inputs]\nprompts = ["a red cat on a sofa", "a dog"]\n'
                        'unsupervised_regions = true\n[attention]\n', "unsupervised")
    run = run_probe(probe, tmp_path / "run", pipe=pipe, dashboard=False)
    leakage = pd.read_parquet(run / "attention" / "leakage.parquet")
    assert set(leakage.prompt) == {0, 1} and "background" in set(leakage.region)
    assert set(leakage.region) - {"background"} and all(r.startswith("cluster ") for r in set(leakage.region) - {"background"})
    assert leakage.own_region.isna().all()  # no word owns a cluster
    per_word = leakage.groupby(["prompt", "word", "occurrence"])
    assert np.allclose(per_word.area.sum(), 1.0) and np.allclose(per_word.mass.sum(), 1.0, atol=1e-5)  # the regions tile the image
    assert len(pd.read_parquet(run / "attention" / "localisation.parquet")) == 0
    assert json.loads((run / "run.json").read_text())["model"]["regions"] == "UnsupervisedRegions"


def test_tcav_probe_on_an_sd3_folder_reads_its_transformer_blocks(tmp_path, monkeypatch):
    """A joint-attention transformer in a [tcav] section: the default layers are its early,
    middle and late blocks; a UNet layer name is refused naming the components it has."""
    monkeypatch.chdir(tmp_path)
    pipeline = save_random_pipeline("sd3", tmp_path, sample_size=8)
    (tmp_path / "cats.txt").write_text("a photo of a cat\na cat on a sofa\na small cat\n")
    (tmp_path / "pool.txt").write_text("\n".join(f"a photo of thing {i}" for i in range(9)))
    (tmp_path / "target.py").write_text("def redness(images):\n    return images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))\n")
    head = (f'name = "sd3"\n[model]\npipeline = "{pipeline}"\nsteps = 2\n[inputs]\nprompts = ["a cat"]\n'
            '[tcav]\ntarget = "target.py:redness"\nconcepts = ["prompts:cats.txt"]\nrandom_pool = "prompts:pool.txt"\n'
            'explained = "prompts:cats.txt"\nexamples = 3\nrandom_runs = 3\n')
    (tmp_path / "bad.toml").write_text(head + 'layers = ["unet.mid_block"]\n')
    with pytest.raises(ProbeError, match=r"\[tcav\] module 'unet.mid_block': the pipeline has no component 'unet'; its components are: .*transformer"):
        run_probe(Path("bad.toml"), Path("bad"))
    assert not Path("bad").exists()
    (tmp_path / "sd3.toml").write_text(head)
    run = run_probe(Path("sd3.toml"), Path("run"), dashboard=False)
    scores = pd.read_parquet(run / "tcav" / "scores.parquet")
    blocks = json.loads((Path(pipeline) / "transformer" / "config.json").read_text())["num_layers"]
    assert list(scores.layer) == list(dict.fromkeys(f"transformer.transformer_blocks.{i}" for i in (0, blocks // 2, blocks - 1)))
    assert scores.score.between(0, 1).all()
