"""The operator dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

Screenshots of the main views are kept in out/test-artifacts/dashboard/ and checked: not blank, and the
elements each view must show are there.
"""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.cloud_servers import encoder_for
from tests.conftest import ROOT
from tests.test_job_lifecycle import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "out" / "test-artifacts" / "dashboard"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (make test installs it)")


def run_rounds(cloud, job, devices, rounds, accuracy=0.5):
    encoders = [encoder_for(cloud.plan(devices[0]), seed=i) for i in range(len(devices))]
    for r in range(rounds):
        plan = cloud.plan(devices[0])
        for i, device in enumerate(devices):
            requests.post(f"{cloud.url}/v1/rounds/{plan['round']['id']}/report", headers=device,
                          json={"windows": 100, "accuracy": accuracy + 0.1 * r + 0.02 * i})
            payload = encoders[i].encode(np.zeros(plan["shared_values"]), 10, round_id=plan["round"]["id"]).payload
            assert cloud.upload(device, plan["round"]["id"], payload).status_code == 200
        cloud.wait_for_version(devices[0], plan["model_version"] + 1)


def check_screenshot(page, name: str) -> Path:
    from PIL import Image

    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    image = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    background = np.all(image == image[len(image) // 2 * 0], axis=1).mean()  # the header's top-left colour
    assert len(np.unique(image, axis=0)) > 100, f"{path} looks blank"
    assert background < 0.5, f"{path}: one colour covers {background:.0%}"
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def test_dashboard_views_in_chromium(cloud, bundle_dir, browser):
    busy = cloud.create_job(bundle_dir, name="watch HAR", rounds=10, min_devices=2, max_devices=2)
    single = cloud.create_job(bundle_dir, name="one round so far", rounds=5, min_devices=2, max_devices=2)
    empty = cloud.create_job(bundle_dir, name="no devices yet", rounds=5)
    failing = cloud.create_job(bundle_dir, name="nobody came", rounds=50, round_timeout_s=0.2, on_deadline="fail",
                               max_failed_rounds=25)
    token = cloud.token(busy["id"], max_uses=None)
    devices = [cloud.enrol(token) for _ in range(2)]
    run_rounds(cloud, busy, devices, 3)
    run_rounds(cloud, single, [cloud.enrol(cloud.token(single["id"], max_uses=None)) for _ in range(2)], 1, 0.8)
    wait_for(lambda: cloud.job(failing["id"])["status"] == "stopped", "25 failed rounds to stop the job")

    context = browser.new_context(http_credentials={"username": "admin", "password": cloud.admin_token},
                                  viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    base = f"{cloud.url}/dashboard"

    # the jobs list
    page.goto(base)
    page.wait_for_selector("#health.ok")
    assert page.inner_text("#health") == "database: ok · key service: ok"
    rows = page.locator("#jobs tr").all_inner_texts()[1:]
    assert [row.split("\t")[0].split()[0] for row in rows] == ["watch", "one", "no", "nobody"]
    assert "stopped" in rows[3] and "25 rounds in a row failed" in rows[3]
    assert "round 4 open: 0 of 2-2" in rows[0]
    check_screenshot(page, "jobs")

    # a busy job: progress, charts with axes, history, devices, versions
    page.goto(f"{base}?job={busy['id']}")
    page.wait_for_selector("#updated:has-text('updated')")
    assert page.locator("#accuracy-chart circle.point").count() == 3
    assert page.locator("#accuracy-chart polyline").count() == 1
    assert page.locator("#devices-chart rect.point").count() == 4  # the open round too
    for chart, label in (("#accuracy-chart", "accuracy (fraction correct)"), ("#devices-chart", "devices contributing")):
        texts = page.locator(f"{chart} text").all_text_contents()
        assert "round" in texts and label in texts and "1" in texts and "3" in texts
    assert "0.00" in page.locator("#accuracy-chart text").all_text_contents()
    assert page.locator("#history tr").count() == 5  # 4 rounds and the header
    assert page.locator("#devices tr").count() == 3
    assert [row.split("\t")[4] for row in page.locator("#devices tr").all_inner_texts()[1:]] == ["3", "3"]
    countdown = page.locator("[data-deadline]")
    first = countdown.inner_text()
    assert re.fullmatch(r"\d+ min \d+ s left", first)
    page.wait_for_function(f"document.querySelector('[data-deadline]').textContent !== {first!r}")
    link = page.locator("#versions a").first
    assert link.inner_text() == "download"
    with page.expect_download() as download:
        link.click()  # the browser sends the dashboard's login with it
    assert download.value.suggested_filename == f"{busy['id']}-v4.f32"
    assert Path(download.value.path()).stat().st_size == 4 * busy["shared_values"]
    check_screenshot(page, "job")

    # live: a device uploads; the page updates itself, without a reload
    page.evaluate("window.notReloaded = true")
    plan = cloud.plan(devices[0])
    cloud.upload(devices[0], plan["round"]["id"],
                 encoder_for(plan).encode(np.zeros(plan["shared_values"]), 10, round_id=plan["round"]["id"]).payload)
    page.wait_for_function("document.querySelector('#contributors').textContent.startsWith('1 contributors')",
                           timeout=15000)
    assert page.evaluate("window.notReloaded") is True
    check_screenshot(page, "job-live")

    # one published round: its point is drawn; a job without devices: messages, not blank boxes
    page.goto(f"{base}?job={single['id']}")
    assert page.locator("#accuracy-chart circle.point").count() == 1
    page.goto(f"{base}?job={empty['id']}")
    assert page.inner_text("#accuracy-chart") == "Mean accuracy reported by devices: no data yet"
    assert page.inner_text("#devices-chart") == "Devices per round: no data yet"
    assert page.inner_text("#devices") == "No devices enrolled yet."
    check_screenshot(page, "job-empty")

    # a long history is paged
    page.goto(f"{base}?job={failing['id']}&page=2")
    assert "25 rounds, newest first; page 1 2" in page.inner_text(".pager")
    assert [row.split("\t")[0] for row in page.locator("#history tr").all_inner_texts()[1:]] == ["5", "4", "3", "2", "1"]
    check_screenshot(page, "history-page-2")

    # the key service goes away: the banner says so
    page.goto(f"{base}?job={busy['id']}")
    cloud.keyservice.stop()
    page.wait_for_selector("#health.bad", timeout=15000)
    assert page.inner_text("#health") == "database: ok · key service: unreachable"
    check_screenshot(page, "health-key-service-down")
    context.close()
