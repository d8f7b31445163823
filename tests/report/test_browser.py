"""The report in a real headless browser (Debian's chromium; `make test` installs it): the page
renders, the verdict and the headline table are in the DOM, every image decodes, and the page
fetches nothing. A local proxy that every request must pass through records any network access."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from obliviate.report.html import write_html
from obliviate.report.schema import Report, read_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
# Test-only probe, added to a copy of the page (the report itself has no scripts): after load, it
# writes into the DOM how many images there are and how many decoded.
PROBE = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
         "document.body.setAttribute('data-images',i.length+':'+i.filter(x=>x.complete&&x.naturalWidth>0).length)})"
         "</script>")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed and could not be installed here (`make test` runs "
                "`apt-get install -y chromium`; without network access it cannot)")


class _Proxy:
    """A TCP listener posing as the browser's HTTP(S) proxy: it records each request and closes the
    connection. A connection that sends nothing (Chromium may open one to its proxy ahead of need, a
    preconnect) fetches nothing and is not recorded as a request; every real request starts with its
    ``GET``/``CONNECT`` line."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    data = conn.recv(512)
                except OSError:
                    data = b""
                if data:
                    self.requests.append(data)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def _browse(page: Path, tmp: Path) -> tuple[str, Path, list[bytes]]:
    """(DOM after load, screenshot path, requests that reached the network) of ``page``."""
    exe = _chromium()
    probe = tmp / f"probe_{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proxy = _Proxy()
    net = [f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000"]
    try:
        dom = subprocess.run([exe, *FLAGS, *net, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        shot = tmp / f"{page.stem}.png"
        subprocess.run([exe, *FLAGS, *net, "--hide-scrollbars", "--window-size=1280,1400", f"--screenshot={shot}",
                        page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    finally:
        proxy.close()
    return dom, shot, proxy.requests


def _check_screenshot(shot: Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1200
    assert img[..., :3].std() > 0.05  # not a blank page


def test_harness_catches_a_network_request_and_a_broken_image(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><h1>x</h1><img src="http://example.invalid/a.png">'
                   '<img src="data:image/png;base64,AAAA"></body></html>')
    dom, _, requests = _browse(bad, tmp_path)
    assert any(b"example.invalid" in r for r in page_requests(requests)), "the proxy saw no request for the image"
    assert 'data-images="2:0"' in dom


# Chromium's own background services (network time, sign-in, safe browsing) call Google's hosts even
# with the flags above; those requests are the browser's, not the page's, and are left out.
BROWSER_HOSTS = re.compile(rb"^(GET http://|CONNECT )[a-z0-9.-]*\.(google\.com|gstatic\.com|googleapis\.com)[:/]")


def page_requests(requests: list[bytes]) -> list[bytes]:
    return [r for r in requests if not BROWSER_HOSTS.match(r)]


def _check_report_page(page: Path, tmp_path: Path) -> tuple[str, Path]:
    dom, shot, requests = _browse(page, tmp_path)
    assert page_requests(requests) == [], f"the report made network requests: {page_requests(requests)}"
    assert 'id="verdict-summary"' in dom and 'id="verdict-table"' in dom and 'id="headline-table"' in dom
    n_img = dom.count("<img")
    assert n_img >= 3 and f'data-images="{n_img}:{n_img}"' in dom, "not every image loaded"
    _check_screenshot(shot)
    return dom, shot


def test_fixture_report_in_chromium(tmp_path, lm_report_dict):
    page = write_html(Report.from_dict(lm_report_dict), tmp_path / "report.html")
    dom, _ = _check_report_page(page, tmp_path)
    assert "PASS" in dom and "FAIL" in dom


@pytest.mark.slow
def test_demo_quick_report_in_chromium(tmp_path, monkeypatch, quick_bench, bench_cache):
    """`obliviate demo --quick` end to end, then its report.html in the browser; the page stays < 2 MB."""
    import os

    from obliviate.cli import main

    _chromium()  # skip before the demo runs when there is no browser
    monkeypatch.setenv("OBLIVIATE_CACHE", bench_cache)  # the session's built benchmark (quick_bench)
    out = tmp_path / "demo"
    main(["demo", "--quick", "--out_dir", str(out)])
    page = out / "report.html"
    assert page.stat().st_size < 2_000_000
    report = read_report(out / "report.json")
    _check_report_page(page, tmp_path)
    assert (out / "report.md").read_text().startswith("# obliviate demo report")
    assert report.tables.get("mia_scores") and report.tables.get("attacks")
    shots = os.environ.get("OBLIVIATE_SCREENSHOTS")
    if shots:  # CI keeps the screenshot as an artifact
        Path(shots).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "report.png", Path(shots) / "demo_quick_report.png")
