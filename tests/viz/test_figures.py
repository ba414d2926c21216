import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from workbench.capture import trace
from workbench.viz import concept_depth_figure, heat_map_figure, matrix_figure, projection_figure, tcav_figure


@pytest.fixture(scope="module")
def traced(tiny_shapes):
    with trace(tiny_shapes) as tr:
        images = tiny_shapes(["a large red circle on a gray background"], num_inference_steps=2, output_type="np",
                             generator=torch.Generator().manual_seed(0)).images
    return images[0], tr.attention_maps()


def test_heat_map_figure_has_a_trace_and_a_menu_entry_per_word_and_layer_group(traced):
    image, maps = traced
    fig = heat_map_figure(image, maps, words=["red", "circle"])
    groups = {layer.group for layer in maps.select()}
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 + 2 * (1 + len(groups))
    buttons = fig.layout.updatemenus[0].buttons
    assert buttons[0].label == "red | all layers"
    assert sum(fig.data[i].visible is True for i in range(1, len(fig.data))) == 1
    assert np.allclose(fig.data[1].z, maps.word("red", size=(32, 32)).numpy())
    with pytest.raises(ValueError, match="none of the words"):
        heat_map_figure(image, maps, words=["blue"])


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
