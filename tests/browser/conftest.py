"""Fixtures for the browser tests: headless Chromium (Playwright driving the system browser),
the built book served on 127.0.0.1, and JupyterLab on a temporary copy of ``exercises/``.

The tests skip, saying why, when no Chromium is installed (``apt-get install chromium``) or
when the book has not been built (``make book``; ``make test`` builds it first). With
``LECTUREKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a missing Chromium fails instead.
Every server binds 127.0.0.1 on a free port and is shut down at teardown; every wait is bounded.
"""

from __future__ import annotations

import functools
import json
import http.server
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK_HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
STUDENT_CONFIG = ROOT / "jupyter-student"  # JUPYTER_CONFIG_DIR of `make lab`

# Flags for a closed network: without the background-networking ones Chromium keeps trying
# (and failing) to reach Google's services. Playwright adds --headless and a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen, on which the text column has its full width


def chromium_path() -> str | None:
    """The Chromium to drive: ``$CHROMIUM`` if set, else Debian's ``chromium`` on the PATH."""
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = (
            "browser tests need Chromium: install Debian's package with "
            "`sudo apt-get install chromium` (or set CHROMIUM=/path/to/chromium)"
        )
        if os.environ.get("LECTUREKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[object]:
    """A headless Chromium, shared by the tests of one pytest process."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chrome
        finally:
            chrome.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser context and page for one test (no cookies or storage shared)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def book_url() -> Iterator[str]:
    """The built book (``_build/html``) served over HTTP on 127.0.0.1 and a free port."""
    if not (BOOK_HTML / "index.html").is_file():
        pytest.skip(f"no built book in {BOOK_HTML}: run `make book` first (`make test` does)")
    handler = functools.partial(_QuietHandler, directory=str(BOOK_HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class JupyterLab:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path  # the server's root directory: a temporary copy of exercises/

    def lab_url(self, relative_path: str) -> str:
        """URL that opens ``relative_path`` (under ``root``) in JupyterLab, logged in."""
        return f"{self.url}/lab/tree/{relative_path}?token={self.token}&reset"


def _stop_process_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the server's process group (the server and its kernels), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def _start_jupyter_lab(root: Path, config_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str, str]:
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(os.environ)
    # A private config, data-for-settings and runtime directory: no user settings, no saved
    # workspace, no stale server files; the venv's kernels and extensions are still found.
    env.update(
        JUPYTER_CONFIG_DIR=str(config_dir / "config"),
        JUPYTER_RUNTIME_DIR=str(config_dir / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(config_dir / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(config_dir / "lab-workspaces"),
        TQDM_DISABLE="1",
    )
    # The students' configuration of `make lab` (nbgrader's instructor tools switched off),
    # copied so that JupyterLab's runtime files stay out of the repository.
    shutil.copytree(STUDENT_CONFIG, config_dir / "config", dirs_exist_ok=True, ignore=shutil.ignore_patterns("lab", "migrated"))
    # No "official Jupyter news?" toast over the notebook, and no update check (no network).
    notification = config_dir / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell rendered in the page (no windowing), so that every formula can be checked.
    tracker = config_dir / "lab-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",  # CI runs as root
        "--LabApp.news_url=None",  # no news feed to fetch (the network is not needed)
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return process, f"http://127.0.0.1:{port}", token


def _wait_until_up(process: subprocess.Popen, url: str, token: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def jupyter_lab(chromium: str) -> Iterator[JupyterLab]:
    """``jupyter lab`` on 127.0.0.1 (free port, token, no browser) serving a copy of exercises/,
    with the students' configuration of ``make lab`` (``jupyter-student/``)."""
    with tempfile.TemporaryDirectory(prefix="lecturekit-lab-") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "exercises"
        shutil.copytree(ROOT / "exercises", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        log_path = tmp_path / "jupyter-lab.log"
        process = None
        try:
            for _attempt in range(3):  # another program may take the free port before the server does
                process, url, token = _start_jupyter_lab(root, tmp_path, log_path)
                if _wait_until_up(process, url, token, timeout=90):
                    break
                _stop_process_group(process)
            else:
                pytest.fail(f"jupyter lab did not start; its log:\n{log_path.read_text()[-3000:]}")
            yield JupyterLab(url=url, token=token, root=root)
        finally:
            if process is not None:
                _stop_process_group(process)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print what the book tests looked at (written by the worker that ran them)."""
    report = SCREENSHOTS.parent / "browser-book-report.json"
    if report.is_file() and report.stat().st_mtime >= getattr(config, "_browser_session_start", 0):
        counts = json.loads(report.read_text())
        terminalreporter.write_line("book in Chromium: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + " checked")
        terminalreporter.write_line(f"screenshots: {SCREENSHOTS}")


def pytest_configure(config: pytest.Config) -> None:
    config._browser_session_start = time.time()
