"""How long does `workbench demo` take? Writes benchmarks/results/demo_time.json.

Runs the console script in a fresh process into an empty folder (so nothing is resumed) and
times it end to end, imports and JIT compilation included, and weighs the dashboard it writes.
Goals: 90 seconds on 2 cores, a dashboard under 3 MB (one offline file, plotly.js included).

    python benchmarks/demo_time.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workbench
from workbench.files import atomic_path

RESULT = Path(__file__).parent / "results" / "demo_time.json"


def screenshot(page: Path, target: Path) -> Path | None:
    """The demo dashboard's first heat-map figure as the docs show it (headless Chromium, offline)."""
    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_path.exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(argument)
    os.environ["SE_OFFLINE"] = "true"  # selenium must never download a driver
    browser = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    try:
        browser.get(page.as_uri())
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.querySelectorAll('.heat-menus').length > 0"))
        browser.execute_script("document.querySelector('.heat-menus').scrollIntoView()")
        time.sleep(1)
        with atomic_path(target) as tmp:
            browser.save_screenshot(str(tmp))
    finally:
        browser.quit()
    return target


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="demo-time-"))
    command = [str(Path(sys.executable).with_name("workbench")), "demo", "--out", str(out)]
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise SystemExit(f"workbench demo failed:\n{done.stderr[-2000:]}")
    records = {run.name: json.loads((run / "run.json").read_text()) for run in sorted((out / "runs").iterdir())}
    parts = {name: {part: p["seconds"] for part, p in record["parts"].items()} for name, record in records.items()}
    versions = next(iter(records.values()))["versions"] if records else {"workbench": workbench.__version__}
    result = {
        "seconds": round(seconds, 1),
        "goal_seconds": 90,
        "parts_seconds": parts,
        "dashboard_bytes": (out / "dashboard.html").stat().st_size,
        "goal_dashboard_bytes": 3_000_000,
        "probe_dashboard_bytes": {run.name: (run / "dashboard.html").stat().st_size for run in sorted((out / "runs").iterdir())
                                  if (run / "dashboard.html").exists()},
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
    picture = screenshot(out / "dashboard.html", Path(__file__).parents[1] / "docs" / "dashboard.png")
    result["screenshot"] = str(picture) if picture else "not taken: needs Debian's chromium and chromedriver"
    shutil.rmtree(out, ignore_errors=True)
    with atomic_path(RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
