"""The generation notebook in a real JupyterLab, in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright's Python package; no browser is ever downloaded).

One test, in order: start the emulator (``mangrove-nb emulator --enable-control`` with a random canary token) and
JupyterLab on 127.0.0.1 with a random token, both as subprocesses, on a temporary copy of ``notebooks/`` and with
Jupyter's config, data, runtime and settings folders in a temporary folder too (no user state leaks in). Open
``02_generate_batches.ipynb``, Run > Run All Cells, then in the form pick Net Carbon Removal and 2025 Q2, Preview,
Generate, Confirm; wait for the progress bar to reach 100 % and the plot to appear. Checked: exactly one generation
POST came from the form (the emulator's own counters), the new-batches table lists the preview's count, the
console has no errors, nothing anywhere says "Error displaying widget", and no request left loopback. Then Ctrl+S,
and the saved file holds neither token and renders (nbconvert) as static HTML with the results visible.

Screenshots: ``docs/images/lab_1_opened.png``, ``lab_2_preview.png``, ``lab_3_done.png`` (palette PNGs), written
there only with ``MANGROVE_NB_UPDATE_DOCS=1`` (otherwise to a temporary folder).
Every wait is bounded; every process started here is stopped in a ``finally`` (its whole process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from screenshots import shrink

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = "02_generate_batches.ipynb"
# The README's screenshots are rewritten only with MANGROVE_NB_UPDATE_DOCS=1; otherwise a temporary folder.
IMAGES = ROOT / "docs" / "images" if os.environ.get("MANGROVE_NB_UPDATE_DOCS") == "1" else Path(
    tempfile.mkdtemp(prefix="mangrove-lab-shots-"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LEDGER = "Net Carbon Removal"
GENERATIONS = "create-batch-generation"
WIDGET_ERROR = "Error displaying widget"
Q2_TRACKING = r"[A-Z]+-2025-0[456]"  # the tracking ids of 2025 Q2's monthly batches (NCR-2025-04, BCP-2025-05...)

# Bounds (seconds) on every wait.
START_TIMEOUT = 60
RUN_ALL_TIMEOUT = 120
GENERATE_TIMEOUT = 90
STEP_TIMEOUT = 30_000  # ms, Playwright's unit

pytestmark = [pytest.mark.lab, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

# JupyterLab user settings for the test: no news or update checks (no network, no toast over the form), and
# every cell kept in the DOM (no windowing) so the form's widgets can be found wherever they are.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# --- processes --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[Any] | None) -> None:
    """Stop a process this test started, and its process group (Lab's kernels), politely then firmly."""
    if process is None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
    # The group may outlive its leader (a kernel): make sure nothing of it is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdout is not None:
        process.stdout.close()


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``process`` (the rest is drained in the background so the pipe never fills)."""
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=drain, name="emulator-stdout", daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the emulator printed nothing within {timeout} s") from None


def _start_emulator(token: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-c", "import sys; from mangrove_nb.cli import main; sys.exit(main())",
               "emulator", "--port", "0", "--token", token, "--enable-control", "--batch-seconds", "0.5"]
    with log.open("w") as errors:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   start_new_session=True, cwd=ROOT)
    line = _first_line(process, START_TIMEOUT)
    match = re.match(r"Mangrove emulator on (\S+)", line)
    assert match, f"unexpected first line from the emulator: {line!r}"
    return process, match.group(1)


def _start_lab(root_dir: Path, home: Path, port: int, token: str, env: dict[str, str],
               log: Path) -> subprocess.Popen[bytes]:
    for name, values in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(env, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"),
               MANGROVE_NB_QUIET="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root_dir}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with log.open("w") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=root_dir)


def _wait_for_lab(process: subprocess.Popen[bytes], base: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/api/status", headers={"Authorization": f"token {token}"},
                            timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise AssertionError(f"JupyterLab did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def _wait_for_kernel(page: Any, base: str, token: str) -> None:
    """Until the notebook's kernel is up, idle and connected to the page (Lab's own REST API).

    Waits with ``page.wait_for_timeout``, never ``time.sleep``: Playwright's sync API serves the page's routed
    requests only while a Playwright call runs, so sleeping would hold every request of the page.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError):
            kernels = requests.get(f"{base}/api/kernels", headers={"Authorization": f"token {token}"},
                                   timeout=2).json()
            if any(k.get("execution_state") == "idle" and k.get("connections", 0) > 0 for k in kernels):
                return
        page.wait_for_timeout(250)
    raise AssertionError(f"the notebook's kernel was not idle and connected within {START_TIMEOUT} s")


def _generations(root: str, token: str) -> int:
    response = requests.get(f"{root}/_emulator/stats", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    response.raise_for_status()
    return int(response.json()["counts"].get(GENERATIONS, 0))


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[Any]]]:
    started: list[subprocess.Popen[Any]] = []
    try:
        yield started
    finally:
        for process in reversed(started):  # Lab (and its kernel) first, then the emulator
            _stop(process)


# --- the page ---------------------------------------------------------------------------------------------------


def _screenshot(page: Any, name: str) -> Path:
    path = IMAGES / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    shrink(path)
    return path


def _text(locator: Any) -> str:
    """A locator's visible text, with the widgets' non-breaking spaces as plain spaces."""
    return str(locator.inner_text()).replace("\xa0", " ")


def _no_widget_error(page: Any, step: str) -> None:
    assert WIDGET_ERROR not in page.content(), f"{WIDGET_ERROR!r} in the page after {step}"


def _wait_all_cells_ran(page: Any, code_cells: int) -> None:
    """Until every code cell shows an execution count (``[n]:``, not ``[*]:`` or ``[ ]:``)."""
    page.wait_for_function(
        """(n) => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')];
            return prompts.length === n && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }""", arg=code_cells, timeout=RUN_ALL_TIMEOUT * 1000, polling=250)


# --- the test ---------------------------------------------------------------------------------------------------


def test_generate_batches_notebook_in_jupyterlab(tmp_path: Path) -> None:
    if importlib_missing("jupyterlab"):
        pytest.skip("JupyterLab is not installed (pip install -e '.[lab]', i.e. jupyterlab>=4.2)")
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (Debian package 'chromium')")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright's Python package is not installed (pip install playwright; no browser download needed)")
    import nbformat
    from nbconvert import HTMLExporter

    canary = "mgv_emu_canary_" + secrets.token_hex(12)
    lab_token = secrets.token_hex(24)
    root_dir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.py", "__pycache__"))
    code_cells = sum(cell.cell_type == "code" for cell in nbformat.read(root_dir / NOTEBOOK, as_version=4).cells)

    console: list[str] = []
    blocked: list[str] = []
    with _processes() as started:
        emulator, api_url = _start_emulator(canary, tmp_path / "emulator.log")
        started.append(emulator)
        emulator_root = api_url.removesuffix("/api/v1")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, MANGROVE_API_URL=api_url, MANGROVE_API_TOKEN=canary)
        lab_log = tmp_path / "lab.log"
        lab = _start_lab(root_dir, tmp_path / "jupyter", port, lab_token, env, lab_log)
        started.append(lab)
        _wait_for_lab(lab, base, lab_token, lab_log)

        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(STEP_TIMEOUT)

                def route(route: Any) -> None:
                    url = route.request.url
                    if url.startswith((base + "/", "data:", "blob:")):
                        route.continue_()
                    else:
                        blocked.append(url)
                        route.abort()

                page.route("**/*", route)
                page.on("console", lambda message: console.append(f"{message.type}: {message.text}")
                        if message.type == "error" else None)
                page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

                # 1. Open the notebook, wait for its kernel, run all cells.
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={lab_token}", wait_until="domcontentloaded")
                page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible",
                                                                              timeout=START_TIMEOUT * 1000)
                page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first \
                    .wait_for(state="attached", timeout=START_TIMEOUT * 1000)
                _wait_for_kernel(page, base, lab_token)
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
                page.locator(".lm-Menu-item[data-command='runmenu:run-all']", has_text="Run All Cells").click()
                _wait_all_cells_ran(page, code_cells)
                assert _generations(emulator_root, canary) == 1  # the code cells' Q1 2025, once
                form = page.locator(".jp-OutputArea-output .widget-vbox", has_text="Generate batches").first
                form.wait_for(state="visible")
                _no_widget_error(page, "Run All")
                assert "Traceback" not in page.locator(".jp-NotebookPanel").inner_text()
                form.scroll_into_view_if_needed()
                _screenshot(page, "lab_1_opened.png")

                # 2. Pick the ledger and Q2 2025, then Preview.
                ledger = form.locator(".widget-dropdown", has_text="Ledger").locator("select")
                # Option labels are shown with non-breaking spaces; their values are the plain labels.
                options = ledger.locator("option").evaluate_all("options => options.map(o => o.value)")
                ledger.select_option(value=next(value for value in options if value.startswith(LEDGER + " (")))
                form.locator("select:has(option:text-is('Quarter'))").select_option(label="Quarter")
                form.locator("select:has(option:text-is('2025'))").select_option(label="2025")
                form.locator("select:has(option:text-is('Q2'))").select_option(label="Q2")
                form.locator("button.jupyter-button", has_text="Preview").click()
                preview = form.locator(".widget-html", has_text="Batches to create").locator("tbody tr")
                preview.first.wait_for(state="visible")
                counts = [int(text) for text in preview.locator("td:nth-child(2)").all_inner_texts()]
                expected = sum(counts)
                assert expected > 0, f"the preview of {LEDGER} 2025Q2 counts nothing to generate"
                assert f"{expected} batches would be created" in _text(form)
                _no_widget_error(page, "Preview")
                _screenshot(page, "lab_2_preview.png")

                # 3. Generate, Confirm, follow the progress bar to 100 % and the plot.
                generate = form.locator("button.jupyter-button", has_text="Generate")
                page.wait_for_function("(b) => !b.disabled", arg=generate.element_handle())
                generate.click()
                confirm = form.locator("button.jupyter-button", has_text="Confirm")
                confirm.wait_for(state="visible")
                question = _text(form.locator(".widget-html", has_text=re.compile(r"^\s*Create\s\d")).first)
                assert question.startswith("Create ") and LEDGER in question and question.endswith("?"), question
                assert sum(map(int, re.findall(r"(\d+) (?:batch(?:es)? )?on ", question))) == expected, question
                # Every width the bar takes from now on (it must move, not jump in at 100 %).
                form.evaluate("""(form) => {
                    window.__mnbWidths = [];
                    new MutationObserver(() => {
                        const bar = form.querySelector('.widget-hprogress .progress-bar');
                        const width = bar && bar.style.width;
                        if (width && window.__mnbWidths.at(-1) !== width) window.__mnbWidths.push(width);
                    }).observe(form, {subtree: true, attributes: true, childList: true});
                }""")
                confirm.click()
                bar = form.locator(".widget-hprogress .progress-bar")
                bar.wait_for(state="visible")
                page.wait_for_function("(bar) => bar.style.width === '100%'", arg=bar.element_handle(),
                                       timeout=GENERATE_TIMEOUT * 1000, polling=200)
                plot = form.locator("img.widget-image")
                page.wait_for_function(
                    "(form) => { const img = form.querySelector('img.widget-image');"
                    " return img && img.offsetParent !== null && img.complete && img.naturalWidth > 300; }",
                    arg=form.element_handle(), timeout=GENERATE_TIMEOUT * 1000, polling=200)
                assert plot.is_visible()
                widths = page.evaluate("window.__mnbWidths")
                assert widths[-1] == "100%" and any(float(w.rstrip("%")) < 100 for w in widths), widths
                status = _text(form)
                assert re.search(rf"complete: created {expected} batch(es)? for ", status), status
                made = form.locator(".widget-html", has_text="New batches").locator("tbody tr")
                assert made.count() == expected
                tracking = made.locator("td:first-child").all_inner_texts()
                assert all(re.fullmatch(Q2_TRACKING, text) for text in tracking), tracking
                assert _generations(emulator_root, canary) == 2  # exactly one more: the form's
                _no_widget_error(page, "Confirm")
                plot.scroll_into_view_if_needed()
                _screenshot(page, "lab_3_done.png")

                # 4. Save from JupyterLab (Ctrl+S) and wait for the file to hold the outcome.
                saved = root_dir / NOTEBOOK
                before = saved.stat().st_mtime_ns
                page.locator(".jp-NotebookPanel .jp-Cell .jp-InputPrompt").first.click()
                page.keyboard.press("Control+s")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not (
                        saved.stat().st_mtime_ns != before and f"New batches ({expected})" in saved.read_text()):
                    page.wait_for_timeout(200)  # not time.sleep: the page's requests must go on
                text = saved.read_text()
                assert f"New batches ({expected})" in text, "the saved notebook does not hold the form's outcome"
                _no_widget_error(page, "saving")

                # 5. The saved notebook as static HTML (nbconvert), opened offline: the results are visible.
                notebook = nbformat.reads(text, as_version=4)
                nbformat.validate(notebook)
                body, _ = HTMLExporter().from_notebook_node(notebook)
                exported = tmp_path / "02_generate_batches.html"
                exported.write_text(body, encoding="utf-8")
                static_page = browser.new_page(viewport={"width": 1280, "height": 900})
                static_page.route("**/*", lambda route: route.continue_()
                                  if route.request.url.startswith(("file:", "data:")) else route.abort())
                static_page.goto(exported.as_uri(), wait_until="load")
                block = static_page.locator(".mnb-static", has_text=f"New batches ({expected})").last
                block.scroll_into_view_if_needed()
                assert block.is_visible()
                rows = block.locator("table").last.locator("tbody tr")
                assert rows.count() == expected
                assert all(re.fullmatch(Q2_TRACKING, t) for t in rows.locator("td:first-child").all_inner_texts())
                image = block.locator("img")
                assert image.get_attribute("src").startswith("data:image/png;base64,")
                assert image.evaluate("img => img.complete && img.naturalWidth > 300"), "the static plot did not decode"
                static_page.close()
            except BaseException:
                with contextlib.suppress(Exception):  # what the page looked like, for the failure report
                    page.screenshot(path=str(tmp_path / "failure.png"))
                    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
                    print(f"failure screenshot: {tmp_path / 'failure.png'}; prompts: {prompts}; console: {console}")
                raise
            finally:
                browser.close()

    # The saved file and its HTML: no token (neither the emulator's canary nor Lab's), no widget error.
    assert canary not in text, "the emulator's token was saved in the notebook"
    assert lab_token not in text, "JupyterLab's token was saved in the notebook"
    assert canary not in body and lab_token not in body
    assert WIDGET_ERROR not in text and WIDGET_ERROR not in body

    assert blocked == [], f"the page tried to leave loopback: {blocked}"
    assert console == [], "browser console errors:\n" + "\n".join(console)


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None
