"""The leaderboard page in a real headless browser (Debian's chromium + chromedriver,
driven by selenium). Skips where they are not installed; .ci/run installs them."""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robbench.leaderboard import write_table
from robbench.leaderboard_render import render

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

ROWS = [  # clean_acc chosen so that text order (10.25 < 100.00 < 55.00 < 9.50) is wrong
    {"model": "alpha-digits", "clean_acc": 9.5, "pgd20": 5.0, "worst_case_acc": 5.0},
    {"model": "beta-digits", "clean_acc": 100.0, "pgd20": 60.0, "worst_case_acc": 60.0},
    {"model": "gamma-digits", "clean_acc": 55.0, "pgd20": 40.0, "worst_case_acc": 40.0,
     "unreliable": "more iterations raised accuracy"},
    {"model": "delta-digits", "clean_acc": 10.25, "pgd20": 20.0, "worst_case_acc": 20.0},
]


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} not installed (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[test]')"
    return None


pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


def synthetic_board(out: Path) -> Path:
    common = {"defense": "nominal", "dataset": "digits", "threat_model": "Linf",
              "architecture": "small-cnn", "n_examples": 450, "seed": 0,
              "checkpoint_sha256": "ab" * 32, "source": "measured", "unreliable": "",
              "reference": "synthetic"}
    write_table(out / "digits-Linf.csv", pd.DataFrame([{**common, **r, "eps": 0.2} for r in ROWS]))
    write_table(out / "digits-Linf-eps0.1.csv", pd.DataFrame([
        {**common, **r, "eps": 0.1, "worst_case_acc": min(100.0, r["worst_case_acc"] + 30)}
        for r in ROWS]))
    render(out)
    return out / "index.html"


@pytest.fixture
def driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


def column(driver, table, name: str) -> list[str]:
    headers = [th.text.rstrip(" ▲▼") for th in table.find_elements("css selector", "thead th")]
    i = headers.index(name)
    return [tr.find_elements("css selector", "td")[i].text
            for tr in table.find_elements("css selector", "tbody tr")]


def test_page_sorts_marks_unreliable_rows_and_shows_the_plot(tmp_path, driver):
    page = synthetic_board(tmp_path / "leaderboards")
    driver.get(page.as_uri())
    assert driver.title == "robbench leaderboards"
    table = driver.find_element("id", "table-digits-Linf")

    # one row per model, best worst-case first
    assert column(driver, table, "model") == ["beta-digits", "gamma-digits", "delta-digits",
                                              "alpha-digits"]
    unreliable = table.find_elements("css selector", "tbody tr.unreliable")
    assert [r.find_element("css selector", "td").text for r in unreliable] == ["gamma-digits"]
    marker = driver.execute_script(
        "return getComputedStyle(arguments[0], '::before').content",
        unreliable[0].find_element("css selector", "td"))
    assert "⚠" in marker

    # clicking a header sorts numerically by that column, a second click reverses
    header = next(th for th in table.find_elements("css selector", "thead th")
                  if th.text == "clean_acc")
    header.click()
    assert column(driver, table, "clean_acc") == ["9.50", "10.25", "55.00", "100.00"]
    header.click()
    assert column(driver, table, "clean_acc") == ["100.00", "55.00", "10.25", "9.50"]

    plot = driver.find_element("css selector", "section#digits-Linf figure img")
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) > 0

    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "leaderboard-page.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 0
    if os.environ.get("ROBBENCH_SCREENSHOT_DIR"):
        target = Path(os.environ["ROBBENCH_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
