"""The dashboard in a real browser: Debian's headless Chromium driven by selenium, offline.

Checks what string tests cannot: the page's scripts run without console errors and without the
network, plotly draws every figure, user strings show as text and inject nothing, and the heat
map's controls (the word | layer-group menu, the step slider) change what is drawn.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from workbench.viz import Section, heat_map_figure, matrix_figure, write_dashboard

from workbench.viz.heat_maps import COLOR_BAR

from .test_figures import planted_per_step_maps

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
    heat = heat_map_figure(image, maps, prompts=0, words=["red", "circle"])
    matrix = matrix_figure(np.array([[0.9, 0.1], [0.2, 0.8]]), [SCRIPT, "salt & pepper"], ["color", IMG], title=f"leakage {SCRIPT} & more")
    planted = planted_per_step_maps(n_steps=1, prompts=2)
    planted.tokens.texts[1] = f"b {SCRIPT}"  # a prompt menu entry is text, never markup
    batch = heat_map_figure(np.zeros((2, 4, 4, 3), np.uint8), planted, layer_groups={"all layers": None})
    sections = [Section(f"heat maps {SCRIPT}", heat, note=f"note {IMG} {BOLD}"), Section(f"matrix {BOLD}", matrix), Section("batch", batch)]
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
        "return divs.length === 3 && divs.every(div => div.data && div._fullLayout && div.querySelector('.main-svg'))"
    ))
    assert driver.execute_script("const div = document.getElementById('figure-0');"
                                 "return div.data.length === 1 + 2 * div.layout.meta.heat.combos.length")  # an image, two traces a word
    # the page sends each heat map once and fills the overlay from its side-by-side twin at load
    assert driver.execute_script("const div = document.getElementById('figure-0');"
                                 "return div.layout.meta.heat.combos.every(c => div.data[c[3]].z !== undefined"
                                 " && JSON.stringify(div.data[c[3]].z) === JSON.stringify(div.data[c[3] + 1].z))")
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

    # the page's menus replace plotly's: prompt, word, layers; another word shows another heat map
    assert driver.execute_script("return document.getElementById('figure-0').layout.updatemenus.length") == 0
    before = visible_heat_map(driver)
    # it opens on the head noun of "a large red circle on a gray background"
    assert before["index"] == 4 and before["word"] == "circle (all layers)" and selected(driver, 0, "word") == "circle"
    assert options(driver, 0, "word") == ["red", "circle"] and options(driver, 0, "layers")[0] == "all layers"
    choose(driver, 0, "word", "red")
    WebDriverWait(driver, WAIT_S).until(lambda d: visible_heat_map(d)["index"] == 2)
    after_menu = visible_heat_map(driver)
    assert after_menu["z"] != before["z"]  # "red" differs from "circle" (random weights, still not equal)
    assert driver.execute_script("return document.querySelector('#figure-0 .colorbar .cbtitle').textContent") == COLOR_BAR

    # the step slider (the second): the last step restyles every heat map's z, and keeps the menu's choice
    rail = driver.find_elements(By.CSS_SELECTOR, "#figure-0 rect.slider-rail-touch-rect")[1]
    ActionChains(driver).move_to_element_with_offset(rail, rail.size["width"] // 2 - 2, 0).click().perform()
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.getElementById('figure-0')._fullLayout.sliders[1].active") == 3)
    WebDriverWait(driver, WAIT_S).until(lambda d: visible_heat_map(d)["z"] != after_menu["z"])
    after_slider = visible_heat_map(driver)
    assert after_slider["index"] == 2 and after_slider["z"] != after_menu["z"]
    last_step = driver.execute_script("return document.getElementById('figure-0').layout.sliders[1].steps[3].args[0].z[1]")
    assert after_slider["z"] == last_step
    assert "denoising step: 2" in " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#figure-0 g.slider-container"))

    # the opacity slider lays the heat map over the image
    rail = driver.find_elements(By.CSS_SELECTOR, "#figure-0 rect.slider-rail-touch-rect")[0]
    ActionChains(driver).move_to_element_with_offset(rail, rail.size["width"] // 2 - 2, 0).click().perform()
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.getElementById('figure-0').data[1].opacity") == 1)

    # the prompt menu: the other prompt's image and its own words, its title escaped
    assert options(driver, 2, "prompt") == ["a <new1> toy & <b>", f"b {SCRIPT}"]
    choose(driver, 2, "prompt", "1")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
        "return document.getElementById('figure-2')._fullData.filter(t => t.visible === true).map(t => t.index)") == [1, 2 + 2 * 5, 2 + 2 * 5 + 1])
    assert driver.execute_script("return document.querySelector('#figure-2 .gtitle').textContent") == f"b {SCRIPT}"
    # the page as a reader sees it, kept where WORKBENCH_SCREENSHOTS points (CI artefacts, the docs' picture)
    driver.execute_script("document.getElementById('figure-0').previousElementSibling.scrollIntoView()")
    driver.save_screenshot(str(Path(os.environ.get("WORKBENCH_SCREENSHOTS", dashboard.parent)) / "dashboard.png"))
    assert severe(driver) == []


def options(browser, figure: int, name: str) -> list[str]:
    return browser.execute_script(f"return [...document.getElementById('figure-{figure}').previousElementSibling"
                                  f".querySelector('select[name={name}]').options].map(o => o.text)")


def selected(browser, figure: int, name: str) -> str:
    return browser.execute_script(f"return document.getElementById('figure-{figure}').previousElementSibling"
                                  f".querySelector('select[name={name}]').value")


def choose(browser, figure: int, name: str, value: str) -> None:
    browser.execute_script(f"const s = document.getElementById('figure-{figure}').previousElementSibling.querySelector('select[name={name}]');"
                           "s.value = arguments[0]; s.dispatchEvent(new Event('change'));", value)


def visible_heat_map(browser) -> dict:
    """The heat map drawn alone (the second visible heat-map trace): its index, name and z."""
    return browser.execute_script("""
        const div = document.getElementById('figure-0');
        const shown = div._fullData.filter(t => t.type === 'heatmap' && t.visible === true);
        if (shown.length !== 2) return {index: -shown.length, word: null, z: null};
        const index = shown[1].index;
        return {index: index, word: div.data[index].name, z: div.data[index].z};
    """)
