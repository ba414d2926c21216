"""The dashboard in a real browser: Debian's headless Chromium driven by selenium, offline.

Checks what string tests cannot: the page's scripts run without console errors and without the
network, plotly draws every figure, user strings show as text and inject nothing, and the heat
map's controls (the word | layer-group menu, the step slider) change what is drawn.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from workbench.viz import Section, heat_map_figure, matrix_figure, write_dashboard

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason=f"needs Debian's chromium and chromedriver at {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
)]

# each would leave a trace if it ran or became an element: window.__injected, an <img>, a <b id=...>
SCRIPT = "<script>window.__injected = 1; alert(1)</script>"
IMG = "<img src=x onerror='window.__injected = 2'>"
BOLD = "<b id='injected'>bold</b> & co"
WAIT_S = 15


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # selenium manager must never download a driver or a browser
        browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        # anything the page fetched from a network would fail, and be logged as SEVERE
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def dashboard(traced_per_step, tmp_path_factory):
    image, maps = traced_per_step
    heat = heat_map_figure(image, maps, words=["red", "circle"])
    matrix = matrix_figure(np.array([[0.9, 0.1], [0.2, 0.8]]), [SCRIPT, "salt & pepper"], ["color", IMG], title=f"leakage {SCRIPT} & more")
    sections = [Section(f"heat maps {SCRIPT}", heat, note=f"note {IMG} {BOLD}"), Section(f"matrix {BOLD}", matrix)]
    path = tmp_path_factory.mktemp("dashboard") / "dashboard.html"
    write_dashboard(path, f"run {SCRIPT} & {BOLD}", sections, settings={"prompt": f"{SCRIPT} & {IMG}", BOLD: 25})
    return path


def severe(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_dashboard_renders_offline_escapes_user_strings_and_its_controls_work(driver, dashboard):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = dashboard.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)  # plotly.js is inside, nothing fetched
    driver.get(dashboard.as_uri())
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
        "const divs = [...document.querySelectorAll('.plotly-graph-div')];"
        "return divs.length === 2 && divs.every(div => div.data && div._fullLayout && div.querySelector('.main-svg'))"
    ))
    assert driver.execute_script("return document.getElementById('figure-0').data.length") == len(heat_traces(driver)) + 1
    assert severe(driver) == []
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert [name for name in resources if not name.startswith(("file:", "data:", "blob:"))] == []

    # user strings: shown as written, nothing injected
    text = driver.execute_script("return document.body.innerText")
    for literal in (f"run {SCRIPT} & {BOLD}", f"heat maps {SCRIPT}", f"note {IMG} {BOLD}", f"{SCRIPT} & {IMG}"):
        assert literal in text
    assert driver.title == f"run {SCRIPT} & {BOLD}"
    assert driver.execute_script(
        "return [window.__injected, document.querySelectorAll('img, #injected, b').length,"
        " [...document.scripts].filter(s => s.textContent.startsWith('window.__injected')).length]"
    ) == [None, 0, 0]
    assert driver.execute_script("return document.querySelector('#figure-1 .gtitle').textContent") == f"leakage {SCRIPT} & more"

    # the menu: another word | layer group makes another heat map visible
    before = visible_heat_map(driver)
    assert before["index"] == 1 and before["label"] == "red | all layers"
    driver.find_element(By.CSS_SELECTOR, "#figure-0 g.updatemenu-header-group").click()
    items = WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#figure-0 g.updatemenu-dropdown-button"))
    assert [item.text for item in items][:2] == ["red | all layers", "circle | all layers"]
    items[1].click()
    WebDriverWait(driver, WAIT_S).until(lambda d: visible_heat_map(d)["index"] == 2)
    after_menu = visible_heat_map(driver)
    assert after_menu["z"] != before["z"]  # "circle" differs from "red" (random weights, still not equal)

    # the slider: the last step restyles every heat map's z, and keeps the menu's choice
    rail = driver.find_element(By.CSS_SELECTOR, "#figure-0 rect.slider-rail-touch-rect")
    ActionChains(driver).move_to_element_with_offset(rail, rail.size["width"] // 2 - 2, 0).click().perform()
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.getElementById('figure-0')._fullLayout.sliders[0].active") == 3)
    # the slider's state changes before plotly restyles the traces: wait for the new z
    WebDriverWait(driver, WAIT_S).until(lambda d: visible_heat_map(d)["z"] != after_menu["z"])
    after_slider = visible_heat_map(driver)
    assert after_slider["index"] == 2 and after_slider["z"] != after_menu["z"]
    last_step = driver.execute_script("return document.getElementById('figure-0').layout.sliders[0].steps[3].args[0].z[1]")
    assert after_slider["z"] == last_step
    assert "denoising step: 2" in driver.find_element(By.CSS_SELECTOR, "#figure-0 g.slider-container").text
    assert severe(driver) == []


def heat_traces(browser) -> list[int]:
    return browser.execute_script("return document.getElementById('figure-0').data.map((t, i) => i).filter(i => i > 0)")


def visible_heat_map(browser) -> dict:
    """The one heat-map trace plotly currently draws (its index, the menu's label and its z)."""
    return browser.execute_script("""
        const div = document.getElementById('figure-0');
        const shown = div._fullData.filter(t => t.type === 'heatmap' && t.visible === true);
        if (shown.length !== 1) return {index: -shown.length, label: null, z: null};
        const index = shown[0].index;
        const menu = div._fullLayout.updatemenus[0];
        return {index: index, label: menu.buttons[index - 1].label, z: div.data[index].z};
    """)
