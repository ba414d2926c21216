import plotly.graph_objects as go

from workbench.viz.dashboard import Section, render_dashboard, write_dashboard

EVIL = "<script>alert('x')</script>"


def test_dashboard_is_self_contained_and_escapes_user_strings(tmp_path):
    fig = go.Figure(go.Bar(x=[EVIL], y=[1]), layout=dict(title=EVIL))
    page = render_dashboard(f"run {EVIL}", [Section(f"prompt {EVIL}", fig, note=EVIL)], settings={"prompt": EVIL, "steps": 25})
    assert page.count("<script>alert") == 0
    assert "&lt;script&gt;alert" in page
    assert page.count("plotly.js v") >= 1 and "cdn.plot.ly" not in page.split("</script>", 1)[1]
    assert 'id="figure-0"' in page
    path = write_dashboard(tmp_path / "dashboard.html", "run", [Section("a", fig)])
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard.html"]
