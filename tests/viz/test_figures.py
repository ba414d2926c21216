import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from workbench.capture import AttentionLayer, AttentionMaps, PromptTokens, WordSpan
from workbench.viz import concept_depth_figure, default_word, gallery_figure, heat_map_figure, matrix_figure, projection_figure, tcav_figure
from workbench.viz.heat_maps import COLOR_BAR


def finest_grid(maps, layers=None):
    """The finest captured grid among the layers (all by default)."""
    return max((tuple(maps.maps[layer.path].shape[-2:]) for layer in maps.select(layers)), key=lambda s: s[0] * s[1])


def visible_traces(fig) -> list[int]:
    return [i for i, trace in enumerate(fig.data) if trace.visible is True]


def test_heat_map_figure_shows_the_image_beside_the_heat_map_at_its_captured_grid(traced):
    image, maps = traced
    fig = heat_map_figure(image, maps, prompts=0, words=["red", "circle"])
    groups = {layer.group for layer in maps.select()}
    assert isinstance(fig, go.Figure) and len(fig.data) == 1 + 2 * 2 * (1 + len(groups))
    assert fig.data[0].type == "image" and fig.data[0].source.startswith("data:image/png;base64,")
    overlay, alone = fig.data[1], fig.data[2]  # "red", all layers: over the image, and alone with its colour bar
    grid = finest_grid(maps)
    assert np.shape(overlay.z) == grid and np.array_equal(overlay.z, alone.z)
    assert np.allclose(overlay.z, maps.word("red", size=grid).numpy(), atol=5e-4)
    assert overlay.opacity == 0 and overlay.showscale is False and alone.colorbar.title.text == COLOR_BAR
    assert overlay.zsmooth == "best" and (overlay.xaxis, alone.xaxis) == ("x", "x2")
    assert fig.layout.updatemenus[0].buttons[0].label == "red | all layers"
    assert [s.currentvalue.prefix for s in fig.layout.sliders] == ["overlay opacity: "]  # averaged over steps: no step slider
    opacity = fig.layout.sliders[0].steps[2]
    assert opacity.args[0] == {"opacity": 0.5} and list(opacity.args[1]) == list(range(1, len(fig.data), 2))
    opened = heat_map_figure(image, maps, prompts=0)  # every word offered: opens on the head noun, "circle"
    shown = visible_traces(opened)
    assert shown[0] == 0 and len(shown) == 3 and opened.data[shown[1]].name == "circle (all layers)"
    assert opened.layout.meta["heat"]["combos"][opened.layout.meta["heat"]["active"]][1] == "circle"
    with pytest.raises(ValueError, match="none of the words"):
        heat_map_figure(image, maps, prompts=0, words=["blue"])
    with pytest.raises(ValueError, match="one image .* name it with prompts=INDEX"):
        heat_map_figure(image, maps)


def test_per_step_maps_get_a_step_slider_independent_of_the_menu(traced_per_step):
    image, maps = traced_per_step
    fig = heat_map_figure(image, maps, prompts=0, words=["red", "circle"])
    groups = ["all layers"] + sorted({layer.group for layer in maps.select()})
    combos = [(g, w) for g in groups for w in ("red", "circle")]
    heat_traces = list(range(1, 2 * len(combos) + 1))
    assert len(fig.data) == 1 + 2 * len(combos)
    opacity, slider = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["all", "0", "1", "2"] and slider.active == 0
    for position, step in enumerate(slider.steps):
        assert step.method == "restyle" and set(step.args[0]) == {"z"} and list(step.args[1]) == heat_traces
        for k, z in enumerate(step.args[0]["z"]):
            g, word = combos[k // 2]
            layers = None if g == "all layers" else [g]
            expected = maps.word(word, layers=layers, size=finest_grid(maps, layers), step=None if position == 0 else position - 1)
            assert np.allclose(z, expected.numpy(), atol=5e-4)
    # the initial heat maps are the "all" position; the menu only switches visibility
    assert all(np.array_equal(fig.data[i].z, z) for i, z in zip(heat_traces, slider.steps[0].args[0]["z"]))
    assert all(set(button.args[0]) == {"visible"} for button in fig.layout.updatemenus[0].buttons)
    assert not np.array_equal(slider.steps[1].args[0]["z"][0], slider.steps[3].args[0]["z"][0])  # the steps differ


def planted_per_step_maps(n_steps: int = 12, side: int = 4, prompts: int = 1) -> AttentionMaps:
    """Per-step maps with heads kept: at position p the word "<new1>" (slots 2, 3) has the value
    p / 100 everywhere, in every head; "toy" (slot 4) has 0.5 in head 0 and 0.3 in head 1."""
    cross = torch.zeros(prompts, n_steps, 2, 6, side, side)  # (prompt, step, head, token, y, x)
    for p in range(n_steps):
        cross[:, p, :, 2:4] = p / 100
    cross[:, :, 0, 4], cross[:, :, 1, 4] = 0.5, 0.3
    words = [WordSpan("a", 0, (1,)), WordSpan("<new1>", 0, (2, 3)), WordSpan("toy", 0, (4,)), WordSpan("&", 0, ())]
    return AttentionMaps(
        maps={"cross": cross}, layers=[AttentionLayer("cross", "up.1.0", "cross")],
        tokens=PromptTokens(["a <new1> toy & <b>"] * prompts, [["<s>", "a", "<new1>", "<new1>_1", "toy", "<e>"]] * prompts, [words] * prompts),
        image_size=(side, side), steps=[2 * p for p in range(n_steps)], timesteps=[999.0 - 80 * p for p in range(n_steps)],
        per_step=True, heads_kept=True, guidance="cond",
    )


def test_slider_subsamples_steps_and_user_text_is_shown_as_written():
    maps = planted_per_step_maps()
    fig = heat_map_figure(np.zeros((4, 4, 3)), maps, prompts=0)
    slider = fig.layout.sliders[1]
    positions = [0, 1, 2, 4, 5, 6, 7, 9, 10, 11]  # 10 of 12, evenly spaced, first and last kept
    assert [s.label for s in slider.steps] == ["all"] + [str(2 * p) for p in positions]
    assert visible_traces(fig) == [0, 5, 6]  # opens on "toy", the head of "a <new1> toy & <b>"
    new1 = 2  # z lists: overlay and heat map of "a", then of "<new1>", ...
    assert np.allclose(slider.steps[0].args[0]["z"][new1], round(np.mean(range(12)) / 100, 4))
    for step, p in zip(slider.steps[1:], positions):
        assert np.array_equal(step.args[0]["z"][new1], np.full((4, 4), p / 100))
        assert np.array_equal(step.args[0]["z"][4], np.full((4, 4), 0.4))  # "toy": mean of the heads
    # plotly reads titles and labels as HTML-like markup; user text is escaped to show as written
    assert fig.layout.title.text == "a &lt;new1&gt; toy &amp; &lt;b&gt;"
    assert [b.label for b in fig.layout.updatemenus[0].buttons][:3] == ["a | all layers", "&lt;new1&gt; | all layers", "toy | all layers"]
    assert fig.data[3].name == "&lt;new1&gt; (all layers)"
    assert fig.layout.meta["heat"]["prompts"] == ["a <new1> toy & <b>"]  # the page's menus take it as text
    every = heat_map_figure(np.zeros((4, 4, 3)), maps, prompts=0, max_steps=20).layout.sliders[1]
    assert [s.label for s in every.steps] == ["all"] + [str(2 * p) for p in range(12)]


def test_heat_maps_stay_at_their_grid_and_are_stretched_over_the_image():
    maps = planted_per_step_maps(n_steps=2, side=8)
    fig = heat_map_figure(np.zeros((128, 96, 3)), maps, prompts=0, words=["toy"], max_heat_size=4)
    heat = fig.data[1]
    assert np.shape(heat.z) == (4, 4)
    # cell (0, 0) covers image pixels 0..31 down and 0..23 across (pixel centres at integers)
    assert (heat.x0, heat.dx, heat.y0, heat.dy) == (11.5, 24.0, 15.5, 32.0)
    small = heat_map_figure(np.zeros((8, 8, 3)), maps, prompts=0, words=["toy"]).data[1]
    assert np.shape(small.z) == (8, 8) and (small.x0, small.dx) == (0.0, 1.0)
    single = heat_map_figure(np.zeros((4, 4, 3)), planted_per_step_maps(n_steps=1), prompts=0)
    assert len(single.layout.sliders) == 1  # one step: only the opacity slider


def test_a_batch_gets_one_figure_with_every_prompt_and_its_own_default_word():
    maps = planted_per_step_maps(n_steps=1, prompts=3)
    images = np.zeros((3, 4, 4, 3), np.uint8)
    fig = heat_map_figure(images, maps, layer_groups={"all layers": None})
    meta = fig.layout.meta["heat"]
    assert meta["images"] == [0, 1, 2] and len(meta["combos"]) == 3 * 3 and meta["defaults"] == [2, 5, 8]
    assert [t.type for t in fig.data[:3]] == ["image"] * 3 and visible_traces(fig) == [0, 3 + 4, 3 + 5]
    button = fig.layout.updatemenus[0].buttons[4]  # prompt 1's "<new1>"
    assert button.label == "1: &lt;new1&gt; | all layers"
    assert list(button.args[0]["visible"])[:3] == [False, True, False]
    assert heat_map_figure(images, maps, prompts=[2]).layout.meta["heat"]["prompts"] == ["a <new1> toy & <b>"]


def test_default_word_is_the_head_of_the_first_phrase():
    def spans(text):
        return [WordSpan(w, 0, (i,)) for i, w in enumerate(text.split())]

    for text, expected in [("a large red circle on a gray background", "circle"), ("a <cat-toy> on a sofa, a dog", "<cat-toy>"),
                           ("mystyle of a S* and a kword", "mystyle"), ("a photo of a cat in the garden", "cat"),
                           ("a small dog, running", "dog,"), ("a the", "a")]:
        words = spans(text)
        assert words[default_word(words)].word == expected, text


def test_gallery_shows_every_image_with_its_prompt():
    fig = gallery_figure(np.zeros((5, 4, 4, 3)), ["a <b>red</b> circle"] + [f"prompt {i}" for i in range(4)], columns=4)
    assert len(fig.data) == 5 and all(t.source.startswith("data:image/png") for t in fig.data)
    assert fig.layout.annotations[0].text == "a &lt;b&gt;red&lt;/b&gt; circle"
    with pytest.raises(ValueError, match="5 images but 1 captions"):
        gallery_figure(np.zeros((5, 4, 4, 3)), ["x"])


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


def test_aggregate_figures_show_chance_excess_intervals_and_n():
    import pandas as pd

    from workbench.analyses.summaries import leakage_summary, localisation_summary
    from workbench.viz import leakage_figure, localisation_figure

    from ..analyses.test_summaries import leakage_rows

    frame = pd.DataFrame(leakage_rows(0, [0.5, 0.1, 0.4], [0.05, 0.15, 0.8]) + leakage_rows(1, [0.3, 0.3, 0.4], [0.15, 0.05, 0.8]))
    frame["role"] = frame.role.replace("color", "<b>colour</b>")  # user strings stay text
    fig = leakage_figure(leakage_summary(frame))
    heat = fig.data[0]
    assert list(heat.y) == ["&lt;b&gt;colour&lt;/b&gt;", "background"]
    assert list(heat.x) == ["own region", "other regions", "background", "object 1", "object 2"]
    assert heat.z[0][0] == pytest.approx(0.3) and np.isnan(heat.z[1][1])  # excess; the background word has no "other regions"
    assert "chance 0.10" in heat.text[0][0] and "n 2" in heat.text[0][0] and "excess +0.30 [" in heat.text[0][0]
    local = pd.DataFrame({"role": ["color", "color", "shape"], "area": [0.1, 0.3, 0.2], "iou": [0.5, 0.7, 0.1]})
    bars = localisation_figure(localisation_summary(local))
    assert list(bars.data[0].y) == pytest.approx([0.6, 0.1]) and list(bars.data[1].y) == pytest.approx([0.2, 0.2])
    assert list(bars.data[0].text) == ["n 2", "n 1"]


def test_diff_figure_shows_both_maps_and_their_difference():
    from workbench.viz import diff_figure, word_change_figure

    base, other = planted_per_step_maps(n_steps=1), planted_per_step_maps(n_steps=1)
    other.maps["cross"] = other.maps["cross"] * 2  # every word attends twice as much in the other model
    images = np.zeros((1, 4, 4, 3), np.uint8)
    fig = diff_figure((images, images), (base, other), ("base", "tuned <b>"))
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 3 * 3  # a, <new1>, toy: base, other, difference each
    shown = [t for t in heat if t.visible is True]
    assert len(shown) == 3 and np.allclose(np.asarray(shown[2].z), np.asarray(shown[1].z) - np.asarray(shown[0].z), atol=1e-3)
    assert np.allclose(shown[0].z, 0.5 * 0.5 + 0.5 * 0.3)  # "toy", the head noun: the mean of its heads
    assert fig.layout.annotations[1].text == "tuned &lt;b&gt;"
    words = pd.DataFrame({"prompt": [0, 1, 0], "word": ["red", "red", "cat"], "occurrence": 0, "heat_overlap": [0.9, 0.7, 1.0], "encoder_cosine": [1.0, 1.0, 0.5]})
    bars = word_change_figure(words)
    assert list(bars.data[0].x) == ["red", "cat"] and list(bars.data[0].y) == pytest.approx([0.2, 0.0]) and list(bars.data[1].y) == pytest.approx([0.0, 0.5])


def test_a_dashboard_figure_leaves_out_plotlys_menu_and_function_words():
    maps = planted_per_step_maps(n_steps=1, prompts=2)
    images = np.zeros((2, 4, 4, 3), np.uint8)
    full = heat_map_figure(images, maps)
    light = heat_map_figure(images, maps, menu=False, function_words=False)
    assert not light.layout.updatemenus and full.layout.updatemenus
    assert {c[1] for c in light.layout.meta["heat"]["combos"]} == {"<new1>", "toy"}  # "a" left out
    assert len(light.to_json()) < len(full.to_json())


def test_erasure_figure_puts_each_model_beside_the_other_with_intervals():
    from workbench.viz import erasure_figure

    presence = pd.DataFrame({"model": ["base", "erased", "erased"], "source": ["plain", "plain", "word search"], "n": [64, 64, 64],
                             "present": [60, 2, 40], "rate": [60 / 64, 2 / 64, 40 / 64], "low": [0.85, 0.01, 0.5], "high": [0.98, 0.1, 0.73]})
    fig = erasure_figure(presence)
    base, erased = fig.data
    assert list(base.x) == ["plain", "word search"] and np.isnan(base.y[1]) and base.y[0] == pytest.approx(0.9375)
    assert list(erased.y) == [pytest.approx(2 / 64, abs=1e-4), 0.625]
    assert erased.error_y.arrayminus[1] == pytest.approx(0.125) and erased.error_y.array[1] == pytest.approx(0.105)


def test_a_two_object_prompt_opens_on_its_first_head_noun_without_its_function_words():
    text = "a large green triangle and a small purple cross on a black background"
    words = [WordSpan(w, text.split()[:i].count(w), (i + 1,)) for i, w in enumerate(text.split())]
    side, n = 4, len(words) + 2
    maps = AttentionMaps(maps={"cross": torch.rand(1, n, side, side)}, layers=[AttentionLayer("cross", "up.1.0", "cross")],
                         tokens=PromptTokens([text], [["<s>", *text.split(), "<e>"]], [words]), image_size=(side, side),
                         steps=[0], timesteps=[999.0], per_step=False, heads_kept=False, guidance="cond")
    fig = heat_map_figure(np.zeros((1, side, side, 3), np.uint8), maps, menu=False, function_words=False, layer_groups={"all layers": None})
    meta = fig.layout.meta["heat"]
    assert meta["combos"][meta["active"]][1] == "triangle"  # not "background", the last word once "and" and "on" are left out
