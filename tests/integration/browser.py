"""Debian's headless Chromium for the page tests (never a downloaded browser), and the
helpers they share: evaluate and wait for JavaScript in the page, screenshots and figures
written as artifacts under `tests/artifacts/<page>/`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from ccserver.stack.procs import wait_until

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def tone(path: Path, hz: float, rate: int) -> Path:
    """A 120 s sine WAV at `hz` (sox)."""
    command = ["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path)]
    subprocess.run([*command, "synth", "120", "sine", str(hz), "vol", "0.5"], check=True)
    return path


@contextmanager
def chromium(
    profile: Path, *, mic: Path | None = None, size: str = "1280,720"
) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile; `mic`: a WAV as its microphone."""
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
    ]
    if mic is not None:
        flags += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}",
        ]
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    width, height = (int(n) for n in size.split(","))
    driver.set_window_size(width, height)
    try:
        yield driver
    finally:
        driver.quit()


def js(driver: WebDriver, expression: str) -> Any:
    return driver.execute_script(f"return {expression};")


def wait_js(
    driver: WebDriver, expression: str, timeout: float, describe: Callable[[WebDriver], str]
) -> Any:
    """Wait until `expression` is truthy in the page; return its value. `describe` says
    what the page shows, for the failure message."""
    found: list[Any] = []

    def check() -> bool:
        value = js(driver, expression)
        found[:] = [value]
        return bool(value)

    assert wait_until(check, timeout), f"page never had {expression}: {describe(driver)}"
    return found[0]


def unstale(action: Callable[[], None], tries: int = 5) -> None:
    """Do `action` (find elements, act on them) again from the start when the page
    re-rendered what it found meanwhile: the wallboard and the desk redraw their tables at
    every update, and an element found a moment before may be gone."""
    for attempt in range(tries):
        try:
            action()
            return
        except StaleElementReferenceException:
            if attempt + 1 == tries:
                raise


def console(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")][-10:]


def artifact(page: str, name: str, data: dict[str, Any]) -> None:
    """Figures for the issue's note (and whoever looks next), beside the screenshots."""
    (ARTIFACTS / page).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / page / name).write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n{name}: {data}")


def shot(driver: WebDriver, page: str, name: str) -> None:
    (ARTIFACTS / page).mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / page / f"{name}.png"))
