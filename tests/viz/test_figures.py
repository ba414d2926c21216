import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from workbench.capture import AttentionLayer, AttentionMaps, PromptTokens, WordSpan
from workbench.viz import concept_depth_figure, heat_map_figure, matrix_figure, projection_figure, tcav_figure


def test_heat_map_figure_has_a_trace_and_a_menu_entry_per_word_and_layer_group(traced):
    image, maps = traced
    fig = heat_map_figure(image, maps, words=["red", "circle"])
    groups = {layer.group for layer in maps.select()}
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 + 2 * (1 + len(groups))
    buttons = fig.layout.updatemenus[0].buttons
    assert buttons[0].label == "red | all layers"
    assert sum(fig.data[i].visible is True for i in range(1, len(fig.data))) == 1
    assert np.allclose(fig.data[1].z, maps.word("red", size=(32, 32)).numpy(), atol=5e-4)
    assert np.array_equal(np.round(fig.data[1].z, 3), fig.data[1].z)  # rounded: short JSON
    assert not fig.layout.sliders  # maps averaged over steps: no step slider
    opened = heat_map_figure(image, maps)  # every word offered: opens on the first content word
    shown = next(trace for trace in opened.data[1:] if trace.visible is True)
    assert not shown.name.startswith("a ") and opened.layout.updatemenus[0].active > 0
    with pytest.raises(ValueError, match="none of the words"):
        heat_map_figure(image, maps, words=["blue"])


def test_per_step_maps_get_a_step_slider_independent_of_the_menu(traced_per_step):
    image, maps = traced_per_step
    fig = heat_map_figure(image, maps, words=["red", "circle"])
    groups = ["all layers"] + sorted({layer.group for layer in maps.select()})
    combos = [(g, w) for g in groups for w in ("red", "circle")]
    heat_traces = list(range(1, len(combos) + 1))
    assert len(fig.data) == 1 + len(combos)
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["all", "0", "1", "2"] and slider.active == 0
    for position, step in enumerate(slider.steps):
        assert step.method == "restyle" and set(step.args[0]) == {"z"} and list(step.args[1]) == heat_traces
        for z, (g, word) in zip(step.args[0]["z"], combos):
            expected = maps.word(word, layers=None if g == "all layers" else [g], size=(32, 32), step=None if position == 0 else position - 1)
            assert np.allclose(z, expected.numpy(), atol=5e-4)
            assert np.array_equal(np.round(z, 3), z)
    # the initial heat maps are the "all" position; the menu only switches visibility
    assert all(np.array_equal(fig.data[i].z, z) for i, z in zip(heat_traces, slider.steps[0].args[0]["z"]))
    assert all(set(button.args[0]) == {"visible"} and len(button.args) == 1 for button in fig.layout.updatemenus[0].buttons)
    # the steps differ (else the slider would show nothing)
    assert not np.array_equal(slider.steps[1].args[0]["z"][0], slider.steps[3].args[0]["z"][0])
    assert len(fig.to_json()) < 60 * 1024 * len(combos)  # ~6 characters a value, 5 maps of 32x32 per trace


def planted_per_step_maps(n_steps: int = 12, side: int = 4) -> AttentionMaps:
    """Per-step maps with heads kept: at position p the word "<new1>" (slots 2, 3) has the value
    p / 100 everywhere, in every head; "toy" (slot 4) has 0.5 in head 0 and 0.3 in head 1."""
    cross = torch.zeros(1, n_steps, 2, 6, side, side)  # (prompt, step, head, token, y, x)
    for p in range(n_steps):
        cross[0, p, :, 2:4] = p / 100
    cross[0, :, 0, 4], cross[0, :, 1, 4] = 0.5, 0.3
    words = [WordSpan("a", 0, (1,)), WordSpan("<new1>", 0, (2, 3)), WordSpan("toy", 0, (4,)), WordSpan("&", 0, ())]
    return AttentionMaps(
        maps={"cross": cross}, layers=[AttentionLayer("cross", "up.1.0", "cross")],
        tokens=PromptTokens(["a <new1> toy & <b>"], [["<s>", "a", "<new1>", "<new1>_1", "toy", "<e>"]], [words]),
        image_size=(side, side), steps=[2 * p for p in range(n_steps)], timesteps=[999.0 - 80 * p for p in range(n_steps)],
        per_step=True, heads_kept=True, guidance="cond",
    )


def test_slider_subsamples_steps_and_user_text_is_shown_as_written():
    maps = planted_per_step_maps()
    fig = heat_map_figure(np.zeros((4, 4, 3)), maps)
    slider = fig.layout.sliders[0]
    positions = [0, 1, 2, 4, 5, 6, 7, 9, 10, 11]  # 10 of 12, evenly spaced, first and last kept
    assert [s.label for s in slider.steps] == ["all"] + [str(2 * p) for p in positions]
    new1 = list(fig.layout.updatemenus[0].buttons[1].args[0]["visible"]).index(True, 1) - 1  # trace 0 is the image
    assert new1 == 1  # heat maps in the prompt's word order: a, <new1>, toy ("&" has no token)
    assert np.allclose(slider.steps[0].args[0]["z"][new1], round(np.mean(range(12)) / 100, 3))
    for step, p in zip(slider.steps[1:], positions):
        assert np.array_equal(step.args[0]["z"][new1], np.full((4, 4), p / 100))
        assert np.array_equal(step.args[0]["z"][2], np.full((4, 4), 0.4))  # "toy": mean of the heads
    # plotly reads titles and labels as HTML-like markup; user text is escaped to show as written
    assert fig.layout.title.text == "a &lt;new1&gt; toy &amp; &lt;b&gt;"
    assert [b.label for b in fig.layout.updatemenus[0].buttons][:3] == ["a | all layers", "&lt;new1&gt; | all layers", "toy | all layers"]
    assert fig.data[2].name == "&lt;new1&gt; (all layers)"
    every = heat_map_figure(np.zeros((4, 4, 3)), maps, max_steps=20).layout.sliders[0]
    assert [s.label for s in every.steps] == ["all"] + [str(2 * p) for p in range(12)]


def test_heat_maps_are_capped_in_size_and_stretched_over_the_image():
    maps = planted_per_step_maps(n_steps=2)
    fig = heat_map_figure(np.zeros((128, 96, 3)), maps, words=["toy"], max_heat_size=32)
    heat = fig.data[1]
    assert np.shape(heat.z) == (32, 24)
    # cell (0, 0) covers image pixels 0..3 (pixel centres at integers): centre 1.5, 4 pixels wide
    assert (heat.x0, heat.dx, heat.y0, heat.dy) == (1.5, 4.0, 1.5, 4.0)
    small = heat_map_figure(np.zeros((8, 8, 3)), maps, words=["toy"]).data[1]
    assert np.shape(small.z) == (8, 8) and (small.x0, small.dx) == (0.0, 1.0)
    assert not heat_map_figure(np.zeros((4, 4, 3)), planted_per_step_maps(n_steps=1)).layout.sliders  # one step: nothing to slide over


def test_matrix_projection_tcav_and_depth_figures():
    fig = matrix_figure(np.eye(2), ["w0", "w1"], ["color", "background"], "probe accuracy")
    assert fig.data[0].z.shape == (2, 2) and fig.layout.title.text == "probe accuracy"
    with pytest.raises(ValueError, match="2 rows x 3 columns"):
        matrix_figure(np.eye(2), ["a", "b"], ["x", "y", "z"], "bad")
    points = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "role": ["primary", "auxiliary"]})
    assert len(projection_figure(points, color="role").data) == 2
    with pytest.raises(ValueError, match="no column 'factor'"):
        projection_figure(points, color="factor")
    frame = pd.DataFrame({"concept": ["red", "square"], "layer": ["mid", "mid"], "score": [0.9, 0.5], "score_std": [0.02, 0.1],
                          "random_score": [0.5, 0.5], "significant": [True, False], "cav_accuracy": [0.99, 0.6]})
    bars = tcav_figure(frame)
    assert list(bars.data[0].text) == ["", "n.s."] and list(bars.data[0].marker.opacity) == [1.0, 0.35]
    assert len(concept_depth_figure(frame).data) == 2


def test_tcav_baselines_sit_on_their_own_bars():
    frame = pd.DataFrame({"concept": ["red", "red"], "layer": ["mid", "up.1"], "score": [0.9, 0.6], "score_std": [0.02, 0.1],
                          "random_score": [0.5, 0.4], "significant": [True, False], "p_value": [0.001, 0.3]})
    fig = tcav_figure(frame)
    bars, baseline = fig.data
    assert [list(axis) for axis in bars.x] == [["red", "red"], ["mid", "up.1"]]
    assert [list(axis) for axis in baseline.x] == [list(axis) for axis in bars.x]
    assert list(baseline.y) == [0.5, 0.4]
