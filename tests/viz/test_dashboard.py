import plotly.graph_objects as go

from workbench.viz.dashboard import Section, render_dashboard, write_dashboard

EVIL = "<script>alert('x')</script>"


def test_dashboard_is_self_contained_and_escapes_user_strings(tmp_path):
    fig = go.Figure(go.Bar(x=[EVIL], y=[1]), layout=dict(title=EVIL))
    page = render_dashboard(f"run {EVIL}", [Section(f"prompt {EVIL}", fig, note=EVIL)], settings={"prompt": EVIL, "steps": 25})
    assert page.count("<script>alert") == 0
    assert "&lt;script&gt;alert" in page
    assert page.count("plotly.js (cartesian - minified) v") == 1 and "cdn.plot.ly" not in page.split("</script>", 1)[1]
    assert 'id="figure-0"' in page
    path = write_dashboard(tmp_path / "dashboard.html", "run", [Section("a", fig)])
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard.html"]


def test_settings_read_as_a_table_of_plain_values():
    settings = {"model": {"pipeline": "shapes", "steps": 25, "embeddings": ["a.pt", "b.pt"], "negative_prompt": None},
                "inputs": {}, "seed": 0, "versions": {"workbench": "0.1", "torch": "2.13"}, "prompt": EVIL}
    page = render_dashboard("run", [], settings=settings)
    assert "<td>model / pipeline</td><td>shapes</td>" in page and "<td>model / embeddings</td><td>a.pt, b.pt</td>" in page
    assert "<td>model / negative_prompt</td><td></td>" in page and "<td>versions / torch</td><td>2.13</td>" in page
    assert "<td>inputs</td><td></td>" in page and '{"' not in page.split("<h2>Settings</h2>")[1]
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_the_embedded_plotly_bundle_matches_plotly_py_and_draws_every_figure_type_used():
    from plotly.offline import get_plotlyjs_version

    from workbench.viz.dashboard import BUNDLED_TRACES, PLOTLY_JS, PLOTLY_JS_VERSION

    assert get_plotlyjs_version() == PLOTLY_JS_VERSION  # figures are written for the bundle's version
    head = PLOTLY_JS.read_text(encoding="utf-8")[:200]
    assert f"plotly.js (cartesian - minified) v{PLOTLY_JS_VERSION}" in head
    page = render_dashboard("run", [Section("bars", go.Figure(go.Bar(x=[1], y=[1])))])
    assert len(page) < 1.6e6 and page.count("plotly.js (cartesian") == 1
    try:
        render_dashboard("run", [Section("globe", go.Figure(go.Scattergeo(lon=[0], lat=[0])))])
    except ValueError as error:
        assert "'globe' has trace type(s) ['scattergeo']" in str(error) and "heatmap" in str(error)
    else:
        raise AssertionError("a figure the bundle cannot draw was accepted")
    assert {"heatmap", "image", "bar", "scatter", "box"} <= BUNDLED_TRACES


def test_heat_map_overlays_travel_once():
    values = [[0.125, 0.5], [0.25, 0.75]]
    fig = go.Figure([go.Image(z=[[[0, 0, 0]]]), go.Heatmap(z=values, name="overlay"), go.Heatmap(z=values, name="side")],
                    layout=dict(meta={"heat": {"combos": [[0, "red", "all layers", 1]]}}))
    page = render_dashboard("run", [Section("heat maps", fig)])
    assert page.count("0.125") == 1  # the overlay's copy is filled in by the page's script
    assert fig.data[1].z is not None  # the caller's figure is left whole
