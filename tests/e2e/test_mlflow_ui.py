"""The MLflow UI, checked in a real (headless) browser: a finished sweep's trial runs can be told apart
by config id and seed, and compared on ``dev_accuracy``.

A sweep of experiments/quickstart-tiny.yaml (MiniLM, 2 configs x 2 seeds x 2 epochs) runs in-process
into a sqlite store; ``mlflow server`` serves it on 127.0.0.1; Selenium drives Debian's chromium and
chromedriver. The steps are the ones docs/jobs-and-mlflow-ui.md tells users to take:

- runs page ``/#/experiments/<id>/runs?workflowType=machine_learning&searchFilter=tags.`ipt.kind` = 'trial'``
  with the columns ``ipt.config_id``, ``ipt.seed`` and ``dev_accuracy``, the sweep's parent run expanded;
- compare view ``/#/compare-runs?runs=[<run ids>]&experiments=[<id>]``.

Screenshots go to the test's tmp dir; with ``IPT_UPDATE_SCREENSHOTS=1`` they also replace
docs/img/mlflow-runs.png and docs/img/mlflow-compare.png (CI leaves the checked-in ones alone).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import mlflow_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "quickstart-tiny.yaml"
MODEL_NAME = "quickstart-tiny"  # tracking.register_model of the sweep
EXPERIMENT = "ipt-ray-quickstart-tiny"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS_IMG = REPO / "docs" / "img"
TRIAL_FILTER = "tags.`ipt.kind` = 'trial'"

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} missing "
                    f"(apt-get install -y chromium chromium-driver; .ci/run does this)")
    pytest.importorskip("selenium", reason="selenium is in the dev extra: pip install -e '.[dev]'")


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="iptchrome-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1600,900",
                "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(arg)
    # An explicit chromedriver: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def sweep_store(tmp_path) -> str:
    """A finished quickstart-tiny sweep in ``tmp_path/mlflow.db``; returns the store's URI."""
    from ipt_ray.config import load_config
    from ipt_ray.sweep import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(TINY, [f"tracking.uri={uri}", f"train.output_dir={tmp_path / 'runs'}",
                             f"tracking.register_model={MODEL_NAME}"])
    run_sweep(cfg, TINY, out=lambda *_: None)
    return uri


def _body(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _wait_text(driver, texts: list[str], timeout: float = 45) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.3).until(lambda d: all(t in _body(d) for t in texts))
    except TimeoutException:
        body = _body(driver)
        raise AssertionError(f"{[t for t in texts if t not in body]} not on {driver.current_url}:\n{body[:3000]}")


def _click(driver, css: str | None = None, xpath: str | None = None, timeout: float = 20):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    locator = (By.CSS_SELECTOR, css) if css else (By.XPATH, xpath)
    element = WebDriverWait(driver, timeout).until(EC.element_to_be_clickable(locator))
    element.click()
    return element


def _close_assistant(driver) -> None:
    """MLflow 3 opens its 'Assistant' side panel on first load; it hides half of the table."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "[data-component-id='mlflow.assistant.chat_panel.close']"):
        if button.is_displayed():
            button.click()


def _toggle_columns(driver, names: list[str]) -> None:
    """Columns dropdown: search each name and click the entry whose whole title is that name."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _click(driver, xpath="//button[normalize-space()='Columns']")
    search = WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']"))
    find = ("return [...document.querySelectorAll('[class*=tree-title]')]"
            ".filter(e => e.offsetParent !== null && e.textContent.trim() === arguments[0]);")
    for name in names:
        search.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
        search.send_keys(name)
        entries = WebDriverWait(driver, 10, poll_frequency=0.2).until(lambda d: d.execute_script(find, name))
        entries[0].click()
    search.send_keys(Keys.ESCAPE)


def _save(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)), f"screenshot {name} failed"
    assert shot.stat().st_size > 10_000, f"{name} is suspiciously small"
    if os.environ.get("IPT_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG / name)
    return shot


def test_trial_runs_by_config_and_seed_in_the_mlflow_ui(sweep_store, browser, tmp_path):
    from mlflow import MlflowClient

    with mlflow_server(tmp_path / "server", backend_store_uri=sweep_store) as ml:
        client = MlflowClient(ml.uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([exp.experiment_id], max_results=100)
        trials = sorted((r for r in runs if r.data.tags.get("ipt.kind") == "trial"), key=lambda r: r.info.run_name)
        assert len(trials) == 4
        names = [r.info.run_name for r in trials]
        config_ids = sorted({r.data.tags["ipt.config_id"] for r in trials})
        assert names == [f"{c}-seed{s}" for c in config_ids for s in (0, 1)]

        # 1. the runs page, filtered to the trial runs, with config id / seed / dev_accuracy columns
        query = urllib.parse.urlencode({"workflowType": "machine_learning", "searchFilter": TRIAL_FILTER},
                                       quote_via=urllib.parse.quote)
        browser.get(f"{ml.uri}/#/experiments/{exp.experiment_id}/runs?{query}")
        parent = next(r for r in runs if r.data.tags.get("ipt.kind") == "parent")
        _wait_text(browser, [EXPERIMENT, parent.info.run_name])
        _close_assistant(browser)
        # default columns off (room for ours), then the metric and the two tags on
        _toggle_columns(browser, ["Dataset", "Source", "Models", "dev_accuracy", "ipt.config_id", "ipt.seed"])
        # the filter matches the trial runs; MLflow shows them under their (collapsed) sweep parent
        if not all(name in _body(browser) for name in names):
            _click(browser, css="[data-component-id*='runnamecellrenderer'], button[aria-label*='xpand']")
        _wait_text(browser, [*names, "ipt.config_id", "ipt.seed", "dev_accuracy"])
        body = _body(browser)
        for cid in config_ids:  # two run names and two ipt.config_id cells per config
            assert body.count(cid) >= 4, (cid, body)
        _save(browser, tmp_path, "mlflow-runs.png")

        # 2. the compare view of the four trial runs
        ids = json.dumps([r.info.run_id for r in trials], separators=(",", ":"))
        query = urllib.parse.urlencode({"runs": ids, "experiments": json.dumps([exp.experiment_id]),
                                        "workflowType": "machine_learning"},
                                       quote_via=urllib.parse.quote)
        browser.set_window_size(1600, 1750)
        browser.get(f"{ml.uri}/#/compare-runs?{query}")
        _wait_text(browser, ["Comparing 4 Runs", *names, "seed", "dev_accuracy", "method.strategy"])
        _close_assistant(browser)
        body = _body(browser)
        lines = body.splitlines()
        seed_row = next(line for line in lines if line.startswith("seed "))
        assert sorted(seed_row.split()[1:]) == ["0", "0", "1", "1"], seed_row
        for run in trials:  # every run's final dev_accuracy is on the page
            value = run.data.metrics["dev_accuracy"]
            assert f"{round(value, 3):g}" in body, (run.info.run_name, value)
        browser.execute_script("document.querySelectorAll('*').forEach(e => { if (e.scrollLeft) e.scrollLeft = 0; });")
        _save(browser, tmp_path, "mlflow-compare.png")

        # 3. the registered model: the best config's seeds, version 1, tagged with its sweep
        (version,) = client.search_model_versions(f"name = '{MODEL_NAME}'")
        assert int(version.version) == 1 and version.tags["ipt.sweep_id"] == parent.data.tags["ipt.sweep_id"]
        browser.get(f"{ml.uri}/#/models/{MODEL_NAME}")
        _wait_text(browser, [MODEL_NAME])
        _save(browser, tmp_path, "mlflow-model.png")
