"""The leaderboard page in a real headless browser (Debian's chromium + chromedriver,
driven by selenium). Skips where they are not installed; .ci/run installs them."""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robbench.store.table import write_table
from robbench.leaderboard.render.outputs import render_all

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
    paper = {**common, "model": "paper:clustr:clustr", "defense": "clustr", "dataset": "cifar10",
             "architecture": "resnet18", "eps": 8 / 255, "clean_acc": 87.34, "pgd20": 49.04,
             "worst_case_acc": 49.04, "source": "paper", "n_examples": None, "seed": None,
             "checkpoint_sha256": None, "unreliable": "paper: per-sample worst case unavailable"}
    write_table(out / "cifar10-Linf.csv", pd.DataFrame([paper]))
    render_all(out)
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



def test_measured_leaderboards_come_before_the_papers_own_numbers(tmp_path, driver):
    driver.get(synthetic_board(tmp_path / "leaderboards").as_uri())
    headings = [h.text for h in driver.find_elements("css selector", "main h2")]
    assert headings[0].startswith("digits")
    papers = driver.find_element("id", "papers")
    assert "not measured here" in papers.find_element("css selector", "h2").text
    assert papers.find_elements("css selector", "table#table-cifar10-Linf tr.paper")
    assert not driver.find_elements("css selector", "section#digits-Linf tr.paper")


def test_provenance_columns_are_hidden_until_asked_for(tmp_path, driver):
    driver.get(synthetic_board(tmp_path / "leaderboards").as_uri())
    table = driver.find_element("id", "table-digits-Linf")
    sha = table.find_element("css selector", 'th[data-col="checkpoint_sha256"]')
    worst = table.find_element("css selector", 'th[data-col="worst_case_acc"]')
    assert not sha.is_displayed() and worst.is_displayed()
    driver.find_element("css selector", 'label[for="show-provenance"]').click()
    assert sha.is_displayed()


def test_unreliable_reason_shows_on_hover_over_the_model(tmp_path, driver):
    driver.get(synthetic_board(tmp_path / "leaderboards").as_uri())
    cell = driver.find_element("css selector", "#table-digits-Linf tr.unreliable td")
    assert cell.get_attribute("title") == "unreliable: more iterations raised accuracy"


def test_committed_page_opens_on_measured_results_with_the_worst_case_on_screen(driver, tmp_path):
    from tests.conftest import REPO_ROOT

    driver.get((REPO_ROOT / "leaderboards" / "index.html").as_uri())
    first = driver.find_element("css selector", "main h2")
    assert first.text.split(" ")[0] in ("digits", "mnist-t10k")
    worst = driver.find_element("css selector", 'main table th[data-col="worst_case_acc"]')
    right = driver.execute_script("return arguments[0].getBoundingClientRect().right", worst)
    assert right <= driver.execute_script("return window.innerWidth")
    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "leaderboard-page.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 0
    if os.environ.get("ROBBENCH_SCREENSHOT_DIR"):
        target = Path(os.environ["ROBBENCH_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
