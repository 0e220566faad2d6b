"""The summary page renders in a real browser: Debian's chromium, headless, takes a screenshot.

Skipped only when chromium is absent outside CI (install it with
``apt-get install -y chromium``; python/run_tests.sh does when CI is set). The PNG lands in
build/screenshots/ for people to look at.
"""

from __future__ import annotations

import os
import secrets
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from tests import urls_screenshot

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; in CI it must be: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # we may run as root in a container
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_pixels(data: bytes) -> bytes:
    """The decompressed image data (filter bytes included): enough to tell blank from not."""
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


@pytest.fixture
def logged_in_url(live_server: Any, django_user_model: Any) -> Iterator[str]:
    """A URL that logs the browser in as a superuser, then opens the summary page."""
    django_user_model.objects.create_superuser("screenshot", password="unused-password")
    token = secrets.token_urlsafe(16)
    urls_screenshot.login_token.update(token=token, username="screenshot")
    try:
        with override_settings(ROOT_URLCONF="tests.urls_screenshot"):
            summary = reverse("admin:conveyor_event_summary")
            yield f"{live_server.url}/__login__/?token={token}&next={summary}"
    finally:
        urls_screenshot.login_token.clear()


@pytest.mark.django_db(transaction=True)
def test_summary_page_in_headless_chromium(logged_in_url: str, tmp_path: Path) -> None:
    binary = chromium()
    with transaction.atomic():
        events = publish_many(
            [EventSpec("order.placed", {"i": i}, key=f"c{i % 3}") for i in range(8)]
            + [EventSpec("invoice.issued", {"i": i}) for i in range(3)]
            + [EventSpec("payment.captured", {"i": i}) for i in range(5)]
        )
    Event.objects.filter(pk__in=[e.pk for e in events[:5]]).update(
        status=Status.DEAD, attempts=10, last_error="nats: no responders available for request"
    )
    Event.objects.filter(pk__in=[e.pk for e in events[8:10]]).update(
        status=Status.DEAD, attempts=1, last_error="permanent: message too large (2 MiB > 1 MiB)"
    )
    Event.objects.filter(pk__in=[e.pk for e in events[11:]]).update(
        status=Status.PUBLISHED, published_at=timezone.now()
    )

    dom = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", logged_in_url)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    html = dom.stdout.decode()
    assert "Outbox summary" in html, "not logged in? " + html[:500]
    assert '<span class="n" id="count-dead">7</span>' in html
    assert "message too large" in html and "Retry 5" in html

    shot = tmp_path / "summary.png"
    done = run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", logged_in_url)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (WIDTH, HEIGHT)
    assert len(data) > 10_000, f"suspiciously small screenshot: {len(data)} bytes"
    assert len(set(png_pixels(data))) > 32, "the screenshot is (nearly) one colour"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "admin-summary.png").write_bytes(data)
