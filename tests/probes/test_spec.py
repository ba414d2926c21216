"""Probe files: defaults, and errors that name the file, line, key and what is accepted."""

import pytest

from workbench.probes import ProbeError, load_probe, parse_probe

MINIMAL = 'name = "p"\n[inputs]\nprompts = ["a red circle on a gray background"]\n[attention]\n'


def test_defaults_fill_absent_keys():
    probe = parse_probe(MINIMAL)
    assert probe.model["pipeline"] == "shapes" and probe.model["steps"] == 20
    assert probe.analyses == {"attention": {"layers": "all", "per_step": False, "concepts": [], "maps": "raw"}}


def test_fingerprint_follows_settings():
    assert parse_probe(MINIMAL).fingerprint() == parse_probe(MINIMAL).fingerprint()
    assert parse_probe(MINIMAL).fingerprint() != parse_probe(MINIMAL + "per_step = true\n").fingerprint()


def test_unknown_key_names_line_and_accepted_keys():
    with pytest.raises(ProbeError) as error:
        parse_probe(MINIMAL + "layerz = 'all'\n", "probes/x.toml")
    message = str(error.value)
    assert "probes/x.toml, line 5" in message and "'layerz'" in message and "accepted keys: layers, per_step" in message


def test_wrong_type_names_key_and_type():
    with pytest.raises(ProbeError, match=r"p.toml, line 3: \[model\] steps must be an integer \(denoising steps\), got 'many'"):
        parse_probe(MINIMAL.replace("[inputs]", '[model]\nsteps = "many"\n[inputs]'), "p.toml")


def test_booleans_are_not_integers():
    with pytest.raises(ProbeError, match="seed must be an integer"):
        parse_probe("seed = true\n" + MINIMAL)


def test_unknown_section_and_bad_choice():
    with pytest.raises(ProbeError, match=r"unknown section \[atention\].*\[attention\]"):
        parse_probe(MINIMAL.replace("[attention]", "[atention]"))
    with pytest.raises(ProbeError, match="expected one of sgd, logistic, mean_difference"):
        parse_probe('name = "p"\n[tcav]\nmethod = "svm"\n')


def test_missing_name_inputs_and_analyses():
    with pytest.raises(ProbeError, match="needs 'name'"):
        parse_probe("[attention]\n[inputs]\nscenes = 2\n")
    with pytest.raises(ProbeError, match=r"\[attention\] needs \[inputs\]"):
        parse_probe('name = "p"\n[attention]\n')
    with pytest.raises(ProbeError, match="no analysis to run"):
        parse_probe('name = "p"\n')


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml does not exist"):
        load_probe(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ProbeError, match="bad.toml: not valid TOML"):
        load_probe(bad)


def test_shipped_probes_are_valid():
    from workbench.shapesworld.demo import probes_dir

    files = sorted(probes_dir().glob("*.toml"))
    assert len(files) >= 4
    for path in files:
        load_probe(path)


def test_unset_model_options_are_the_pipelines_own():
    probe = parse_probe('name = "p"\n[inputs]\nprompts = ["a cat"]\n[attention]\n')
    assert probe.model["guidance_scale"] is None and probe.model["height"] is None and probe.model["embeddings"] == []
    assert probe.model["dtype"] == "float32"


@pytest.mark.parametrize("text, message", [
    ('[model]\ndtype = "float8"', "dtype = 'float8'; expected one of float32, float16, bfloat16"),
    ('[model]\nembeddings = "x.pt"', "embeddings must be a list"),
    ('[inputs]\nmasks = "m"\nscenes = 2', "masks are regions of your prompts"),
    ('[inputs]\nprompts = ["a"]\nscenes = 2', "prompts = \\[...\\] or scenes = N, not both"),
    ('[model]\nheight = 0\n[inputs]\nprompts = ["a"]', "height must be at least 1"),
])
def test_model_and_input_options_are_checked(text, message):
    with pytest.raises(ProbeError, match=message):
        parse_probe(f'name = "p"\n{text}\n[attention]\n', "p.toml")
