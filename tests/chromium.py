"""Debian's Chromium, driven by Playwright, for the end-to-end tests."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # Screenshots (git-ignored).
CHROMIUM = os.environ.get("AICOST_CHROMIUM", "/usr/bin/chromium")
# Headless as root, and no calls home: the machines have no internet, and Chromium's background
# connections would be refused many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_context(profile: Path | str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A Playwright browser context of a fresh headless Chromium with its profile in `profile`."""
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; bin/test installs Debian's chromium package.")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1800},
            reduced_motion="reduce",
        )
        try:
            yield context
        finally:
            context.close()
