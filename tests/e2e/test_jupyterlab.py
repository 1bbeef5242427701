"""The generation notebook in a real JupyterLab, in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright's Python package; no browser is ever downloaded).

One test, in order: start the emulator (``mangrove-nb emulator --enable-control`` with a random canary token) and
JupyterLab on 127.0.0.1 with a random token, both as subprocesses, on a temporary copy of ``notebooks/`` and with
Jupyter's config, data, runtime and settings folders in a temporary folder too (no user state leaks in). Lab's
environment has the emulator's URL, token and project (``MANGROVE_PROJECT_ID=123``, as ``make lab`` sets it), so
the form can read the readings a skip would drop. Open ``02_generate_batches.ipynb`` and Run > Run All Cells (its
code cells generate 2025 Q1 only; for Q4 they show the client's refusals and send nothing). Then, in the form:

1. the form's cell shows ONE output, the widgets (its static copy is for saved notebooks: not shown here);
2. Net Carbon Removal, 2025 Q2: Preview, Generate, Confirm; the progress bar moves to 100 % and the plot appears;
   exactly one generation POST, the new-batches table lists the preview's count;
3. another ledger: the previous preview, result, progress and plot are gone (nothing of them under its name);
4. Biochar Applied to Soil (a manual-select input): two candidate rows selected, then the period changed to one
   with fewer candidates, then to one with none (the form names the ledger to generate first);
5. Net Carbon Removal, 2025 Q4: the generation fails on November's missing electricity reading; the form
   recommends adding the reading and, as a last resort, offers November alone without that input, naming the three
   November readings (10,943 kWh) that drops; its preview and its confirmation ("Confirm, dropping 3 readings")
   name them too, and only that confirmation sends; then the rest of the quarter without skipping; the November
   batches are flagged in the result table;
6. Ctrl+S: the saved file holds neither token nor widget state, the form's cell one output, and nbconvert's HTML
   of it shows the static copy with the last outcome (opened offline in Chromium);
7. the form's cell run again: a new form, still one output;
8. ``04_submit_report.ipynb``, opened from the file browser, Run All (its code sends no fill and no submission):
   in the report form, the draft "2025Q1 Quarterly Report" and 2025 Q1 (its batches made by notebook 02's code):
   Plan (three batches added), Fill (one PATCH), Submit (the question names the report, three batches and the
   total in t; nothing sent yet), Confirm submit: the progress bar to 100 %, "the registry allocated" that total,
   exactly one submission POST.

Throughout: the console has no errors, nothing says "Error displaying widget", no request leaves loopback.

Screenshots: ``docs/images/lab_1_opened.png``, ``lab_2_preview.png``, ``lab_3_done.png``, ``lab_4_ledger_changed.png``,
``lab_5_missing_input.png``, ``lab_6_without_input.png``, ``form_static_export.png`` and ``report_form.png`` (the
report form at its question; palette PNGs), written
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
REPORT_NOTEBOOK = "04_submit_report.ipynb"
# The README's screenshots are rewritten only with MANGROVE_NB_UPDATE_DOCS=1; otherwise a temporary folder.
IMAGES = ROOT / "docs" / "images" if os.environ.get("MANGROVE_NB_UPDATE_DOCS") == "1" else Path(
    tempfile.mkdtemp(prefix="mangrove-lab-shots-"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LEDGER = "Net Carbon Removal"
GENERATIONS = "create-batch-generation"
FILLS, SUBMISSIONS = "update-report", "submit-report"
WIDGET_ERROR = "Error displaying widget"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
Q2_TRACKING = r"[A-Z]+-2025-0[456]"  # the tracking ids of 2025 Q2's monthly batches (NCR-2025-04, BCP-2025-05...)
SKIP_NOTE = "generated without Electricity Consumption: its emissions are not counted"
# The emulator's project, as `make lab` sets it: with it, the form reads the readings a skip would drop.
PROJECT_ID = "123"
# What leaving electricity out of November drops on the emulator: the three readings November does have.
DROPS = ("drops 3 existing readings of Electricity Consumption (10,943 kWh) in 2025-11: their emissions will not be "
         "counted, so net removal will be overstated")
# The form's root element in the page (found afresh each time: an updated display redraws the widget view).
FORM_JS = ("() => [...document.querySelectorAll('.jp-OutputArea-output .widget-vbox')]"
           ".find(el => (el.firstElementChild?.textContent || '').trim() === 'Generate batches')")
REPORT_FORM_JS = FORM_JS.replace("Generate batches", "Registry report")
# The panel of notebook 04 (two notebooks are open then; each waits on its own cells).
REPORT_PANEL_JS = ("[...document.querySelectorAll('.jp-NotebookPanel')]"
                   ".find(p => p.textContent.includes('mnb.ReportForm('))")

# Bounds (seconds) on every wait.
START_TIMEOUT = 60
RUN_ALL_TIMEOUT = 120
GENERATE_TIMEOUT = 90
STEP_TIMEOUT = 30_000  # ms, Playwright's unit

pytestmark = [pytest.mark.lab, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

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
            # Jupyter answers a list; anything else (an error object while it starts) means "not yet".
            if isinstance(kernels, list) and any(isinstance(k, dict) and k.get("execution_state") == "idle"
                                                 and k.get("connections", 0) > 0 for k in kernels):
                return
        page.wait_for_timeout(250)
    raise AssertionError(f"the notebook's kernel was not idle and connected within {START_TIMEOUT} s")


def _generations(root: str, token: str, operation: str = GENERATIONS) -> int:
    """How many requests of ``operation`` the emulator received (generations by default)."""
    response = requests.get(f"{root}/_emulator/stats", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    response.raise_for_status()
    return int(response.json()["counts"].get(operation, 0))


def _wait_for_session_kernel(page: Any, base: str, token: str, path: str) -> None:
    """Until the kernel of the notebook at ``path`` is up, idle and connected (another notebook's may be already)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError):
            sessions = requests.get(f"{base}/api/sessions", headers={"Authorization": f"token {token}"},
                                    timeout=2).json()
            kernel = next((s.get("kernel") or {} for s in sessions if s.get("path") == path), {})
            if kernel.get("execution_state") == "idle" and kernel.get("connections", 0) > 0:
                return
        page.wait_for_timeout(250)
    raise AssertionError(f"the kernel of {path} was not idle and connected within {START_TIMEOUT} s")


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


def _wait_all_cells_ran(page: Any, code_cells: int, panel: str = "document") -> None:
    """Until every code cell (of ``panel``, a JS expression for the notebook's element; default the page's only
    notebook) shows an execution count (``[n]:``, not ``[*]:`` or ``[ ]:``)."""
    page.wait_for_function(
        f"""(n) => {{
            const root = {panel};
            if (!root) return false;
            const prompts = [...root.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length === n && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }}""", arg=code_cells, timeout=RUN_ALL_TIMEOUT * 1000, polling=250)


def _until_form(page: Any, condition: str, *, timeout: float = STEP_TIMEOUT / 1000, arg: Any = None,
                form_js: str = FORM_JS) -> None:
    """Until ``condition`` (a JS expression over ``form``, the form's element found afresh by ``form_js``, ``text``,
    its visible text, and ``arg``) holds."""
    page.wait_for_function(
        f"""(arg) => {{
            const form = ({form_js})();
            if (!form) return false;
            const text = form.innerText.replace(/\\u00a0/g, ' ');
            return {condition};
        }}""", arg=arg, timeout=timeout * 1000, polling=100)


def _until_text(page: Any, text: str, *, timeout: float = STEP_TIMEOUT / 1000, form_js: str = FORM_JS) -> None:
    _until_form(page, "text.includes(arg)", arg=text, timeout=timeout, form_js=form_js)


def _settled(page: Any, form_js: str = FORM_JS) -> None:
    """Until the form's element has stayed the same for 400 ms: an update of its display (after an outcome)
    redraws the widget view, and an element of the old view is detached."""
    page.wait_for_function(
        f"""() => {{
            const form = ({form_js})();
            if (!form) return false;
            if (window.__mnbSeen !== form) {{ window.__mnbSeen = form; window.__mnbSince = performance.now(); }}
            return performance.now() - window.__mnbSince > 400;
        }}""", timeout=STEP_TIMEOUT, polling=100)


def _button(form: Any, name: str) -> Any:
    """The form's button whose text is exactly ``name`` (its icon aside)."""
    return form.locator("button.jupyter-button").filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))


def _click_when_enabled(page: Any, form: Any, name: str, form_js: str = FORM_JS) -> None:
    _until_form(page, "[...form.querySelectorAll('button.jupyter-button')].some(b => "
                      "b.textContent.replace(/\\u00a0/g, ' ').trim() === arg && !b.disabled && b.offsetParent)",
                arg=name, form_js=form_js)
    _button(form, name).click()


def _choose_ledger(form: Any, name: str) -> None:
    ledger = form.locator(".widget-dropdown", has_text="Ledger").locator("select")
    # Option labels are shown with non-breaking spaces; their values are the plain labels.
    options = ledger.locator("option").evaluate_all("options => options.map(o => o.value)")
    ledger.select_option(value=next(value for value in options if value.startswith(name + " (")))


def _choose(form: Any, *labels: str) -> None:
    """Pick each label in the picker's drop-down that offers it ("Quarter", "2025", "Q2"...)."""
    for label in labels:
        form.locator(f"select:has(option:text-is('{label}'))").select_option(label=label)


def _generate_and_confirm(page: Any, form: Any, confirm: str = "Confirm", *, before: Any = None) -> str:
    """Generate (once enabled), check the question, click the ``confirm`` button (``before()`` just before);
    returns the question."""
    _click_when_enabled(page, form, "Generate")
    button = _button(form, confirm)
    button.wait_for(state="visible")
    question = _text(form.locator(".widget-html", has_text=re.compile(r"^\s*Create\s\d")).first)
    assert question.startswith("Create ") and "?" in question, question
    if before is not None:
        before()
    button.click()
    return question


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
    report_cells = sum(cell.cell_type == "code"
                       for cell in nbformat.read(root_dir / REPORT_NOTEBOOK, as_version=4).cells)

    console: list[str] = []
    blocked: list[str] = []
    with _processes() as started:
        emulator, api_url = _start_emulator(canary, tmp_path / "emulator.log")
        started.append(emulator)
        emulator_root = api_url.removesuffix("/api/v1")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, MANGROVE_API_URL=api_url, MANGROVE_API_TOKEN=canary, MANGROVE_PROJECT_ID=PROJECT_ID)
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

                # 1. Open the notebook, wait for its kernel, run all cells: the form shows once.
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={lab_token}", wait_until="domcontentloaded")
                page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible",
                                                                              timeout=START_TIMEOUT * 1000)
                page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first \
                    .wait_for(state="attached", timeout=START_TIMEOUT * 1000)
                _wait_for_kernel(page, base, lab_token)
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
                page.locator(".lm-Menu-item[data-command='runmenu:run-all']", has_text="Run All Cells").click()
                _wait_all_cells_ran(page, code_cells)
                by_code = _generations(emulator_root, canary)
                assert by_code >= 1  # the code cells' generations (2025Q1; for Q4 they send nothing)
                form = page.locator(".jp-OutputArea-output .widget-vbox", has_text="Generate batches").first
                form.wait_for(state="visible")
                _no_widget_error(page, "Run All")
                assert "Traceback" not in page.locator(".jp-NotebookPanel").inner_text()
                form_cell = page.locator(".jp-Notebook .jp-CodeCell", has=form)
                assert form_cell.locator(".jp-OutputArea-child").count() == 1  # one output: the widgets
                assert page.locator(".mnb-static").count() == 0  # the static copy is for saved notebooks only
                form.scroll_into_view_if_needed()
                _screenshot(page, "lab_1_opened.png")

                # 2. Pick the ledger and Q2 2025, then Preview, Generate, Confirm.
                _choose_ledger(form, LEDGER)
                _choose(form, "Quarter", "2025", "Q2")
                _click_when_enabled(page, form, "Preview")
                _until_text(page, "batches would be created")
                _settled(page)
                preview = form.locator(".widget-html", has_text="Batches to create").locator("tbody tr")
                counts = [int(text) for text in preview.locator("td:nth-child(2)").all_inner_texts()]
                expected = sum(counts)
                assert expected > 0, f"the preview of {LEDGER} 2025Q2 counts nothing to generate"
                assert f"{expected} batches would be created" in _text(form)
                align = preview.locator("td:nth-child(2)").first.evaluate("td => getComputedStyle(td).textAlign")
                pad = preview.locator("td:first-child").first.evaluate("td => getComputedStyle(td).paddingLeft")
                assert align == "right" and pad == "12px", (align, pad)  # numbers right, cells padded
                _no_widget_error(page, "Preview")
                _screenshot(page, "lab_2_preview.png")

                # Every width the bar takes from now on (it must move, not jump in at 100 %); the form's element
                # is found afresh on each change, since an updated display redraws the widget view.
                page.evaluate(f"""() => {{
                    window.__mnbWidths = [];
                    new MutationObserver(() => {{
                        const form = ({FORM_JS})();
                        const bar = form && form.querySelector('.widget-hprogress .progress-bar');
                        const width = bar && bar.offsetParent !== null && bar.style.width;
                        if (width && window.__mnbWidths.at(-1) !== width) window.__mnbWidths.push(width);
                    }}).observe(document.querySelector('.jp-NotebookPanel'),
                                {{subtree: true, attributes: true, childList: true}});
                }}""")
                question = _generate_and_confirm(page, form)
                assert LEDGER in question, question
                assert sum(map(int, re.findall(r"(\d+) (?:batch(?:es)? )?on ", question))) == expected, question
                _until_form(page, "form.querySelector('.widget-hprogress .progress-bar')?.style.width === '100%'",
                            timeout=GENERATE_TIMEOUT)
                _until_form(page, "(() => { const img = form.querySelector('img.widget-image');"
                                  " return img && img.offsetParent !== null && img.complete && img.naturalWidth > 300;"
                                  " })()", timeout=GENERATE_TIMEOUT)
                plot = form.locator("img.widget-image")
                assert plot.is_visible()
                widths = page.evaluate("window.__mnbWidths")
                assert widths[-1] == "100%" and any(float(w.rstrip("%")) < 100 for w in widths), widths
                status = _text(form)
                assert re.search(rf"complete: created {expected} batch(es)? for ", status), status
                made = form.locator(".widget-html", has_text="New batches").locator("tbody tr")
                assert made.count() == expected
                tracking = made.locator("td:first-child").all_inner_texts()
                assert all(re.fullmatch(Q2_TRACKING, text) for text in tracking), tracking
                assert _generations(emulator_root, canary) == by_code + 1  # exactly one more: the form's
                assert form_cell.locator(".jp-OutputArea-child").count() == 1  # still one output, after updates
                assert page.locator(".mnb-static").count() == 0
                _no_widget_error(page, "Confirm")
                _settled(page)
                plot.scroll_into_view_if_needed()
                _screenshot(page, "lab_3_done.png")

                # 3. Another ledger: the previous preview, result, progress and plot are gone.
                _choose_ledger(form, "Biochar Produced")
                _until_text(page, "Biochar Produced, 2025Q2: Preview")
                _settled(page)
                text = _text(form)
                for gone in ("New batches", "Batches to create", "complete: created", LEDGER + ", 2025Q2"):
                    assert gone not in text, (gone, text)
                assert not form.locator("img.widget-image").is_visible()
                assert not form.locator(".widget-hprogress").is_visible()
                form.scroll_into_view_if_needed()
                _screenshot(page, "lab_4_ledger_changed.png")

                # 4. Manual-select candidates: rows selected, then periods with fewer and with no candidates.
                _choose_ledger(form, "Biochar Applied to Soil")
                _until_text(page, "Biochar Applied to Soil, 2025Q2: Preview")
                _choose(form, "2024", "Q1")
                _until_text(page, "3 complete upstream batch(es) with balance left in 2024Q1")
                candidates = form.locator(".widget-select-multiple select")
                values = candidates.locator("option").evaluate_all("options => options.map(o => o.value)")
                candidates.select_option(value=values[1:3])
                _click_when_enabled(page, form, "Preview")
                _until_text(page, "2 batches would be created")
                _settled(page)
                _choose(form, "Month")  # 2024-01: one candidate, two rows were selected
                _until_text(page, "1 complete upstream batch(es) with balance left in 2024-01")
                _choose(form, "Quarter", "2025", "Q3")
                _until_text(page, "No batch of Biochar Produced with balance left in 2025Q3")
                assert "client.candidates(" in _text(form)
                assert console == [], "browser console errors while the candidates changed:\n" + "\n".join(console)
                _no_widget_error(page, "the candidates")

                # 5. Q4 2025 (the code cells sent nothing for it): fails on November's missing reading; the form
                # recommends adding it, offers November alone without that input as a last resort, naming the
                # readings that drops (offer, preview, confirmation), then the rest of the quarter without skipping.
                before = _generations(emulator_root, canary)
                _choose_ledger(form, LEDGER)
                _choose(form, "Q4")
                _click_when_enabled(page, form, "Preview")
                _until_text(page, "6 batches would be created")
                _settled(page)
                _generate_and_confirm(page, form)
                _until_text(page, "failed on the server", timeout=GENERATE_TIMEOUT)
                _settled(page)
                skip = _button(form, "Preview 2025-11 without Electricity Consumption (drops 3 readings)")
                skip.wait_for(state="visible")
                offered = _text(form)
                assert "2025-11 lacks a reading of 'Electricity Consumption'" in offered
                assert "Recommended: add the missing reading in Mangrove" in offered and DROPS in offered
                assert offered.count("drop_existing_readings=True") == 1  # the client's advice is shown once
                assert _generations(emulator_root, canary) == before + 1
                skip.scroll_into_view_if_needed()
                _screenshot(page, "lab_5_missing_input.png")
                skip.click()
                _until_text(page, "Leaving out 'Electricity Consumption' in 2025-11 only. This " + DROPS)
                _until_text(page, "2 batches would be created")
                _settled(page)
                assert "dropping 3 existing readings of Electricity Consumption (10,943 kWh)" in _text(form)

                def nothing_sent_yet() -> None:
                    assert _generations(emulator_root, canary) == before + 1  # the question sends nothing

                question = _generate_and_confirm(page, form, "Confirm, dropping 3 readings", before=nothing_sent_yet)
                assert "for 2025-11 without 'Electricity Consumption'? This " + DROPS in question, question
                _until_text(page, "complete: created 2 batches for 2025-11", timeout=GENERATE_TIMEOUT)
                _until_text(page, "Leaving 'Electricity Consumption' out dropped 3 existing readings")
                _settled(page)
                made = form.locator(".widget-html", has_text="New batches").locator("tbody tr")
                notes = made.locator("td:last-child").all_inner_texts()
                assert SKIP_NOTE in [n.replace("\xa0", " ") for n in notes], notes
                rest = _button(form, "Preview the rest of 2025Q4")
                made.first.evaluate("row => row.scrollIntoView({block: 'center'})")
                _screenshot(page, "lab_6_without_input.png")
                rest.click()
                _until_text(page, "4 batches would be created")
                _settled(page)
                question = _generate_and_confirm(page, form)
                assert "without" not in question, question
                _until_text(page, "complete: created 4 batches for 2025Q4", timeout=GENERATE_TIMEOUT)
                _settled(page)
                assert _generations(emulator_root, canary) == before + 3  # failed, the month, the rest
                _no_widget_error(page, "the missing input")

                # 6. Save from JupyterLab (Ctrl+S) and wait for the file to hold the outcome.
                saved = root_dir / NOTEBOOK
                before_save = saved.stat().st_mtime_ns
                page.locator(".jp-NotebookPanel .jp-Cell .jp-InputPrompt").first.click()
                page.keyboard.press("Control+s")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not (
                        saved.stat().st_mtime_ns != before_save and "New batches (4)" in saved.read_text()):
                    page.wait_for_timeout(200)  # not time.sleep: the page's requests must go on
                text = saved.read_text()
                assert "New batches (4)" in text, "the saved notebook does not hold the form's outcome"
                _no_widget_error(page, "saving")

                # The saved notebook as static HTML (nbconvert), opened offline: the static copy is shown.
                notebook = nbformat.reads(text, as_version=4)
                nbformat.validate(notebook)
                assert "application/vnd.jupyter.widget-state+json" not in notebook.metadata.get("widgets", {})
                form_outputs = next(cell.outputs for cell in notebook.cells
                                    if cell.cell_type == "code" and "GenerationForm(" in cell.source)
                assert len(form_outputs) == 1 and {"text/html", WIDGET_VIEW} <= set(form_outputs[0]["data"])
                body, _ = HTMLExporter().from_notebook_node(notebook)
                exported = tmp_path / "02_generate_batches.html"
                exported.write_text(body, encoding="utf-8")
                static_page = browser.new_page(viewport={"width": 1280, "height": 900})
                static_page.route("**/*", lambda route: route.continue_()
                                  if route.request.url.startswith(("file:", "data:")) else route.abort())
                static_page.goto(exported.as_uri(), wait_until="load")
                block = static_page.locator(".mnb-static", has_text="New batches (4)")
                assert block.count() == 1
                block.scroll_into_view_if_needed()
                assert block.is_visible()
                rows = block.locator("table").last.locator("tbody tr")
                assert rows.count() == 4
                assert set(rows.locator("td:first-child").all_inner_texts()) == {
                    "NCR-2025-10", "BCP-2025-10", "NCR-2025-12", "BCP-2025-12"}
                image = block.locator("img")
                assert image.get_attribute("src").startswith("data:image/png;base64,")
                assert image.evaluate("img => img.complete && img.naturalWidth > 300"), "the static plot did not decode"
                output = rows.first.locator("td.num").first  # the output: right-aligned; text left
                assert output.evaluate("td => getComputedStyle(td).textAlign") == "right"
                assert rows.first.locator("td").first.evaluate("td => getComputedStyle(td).textAlign") == "left"
                path = IMAGES / "form_static_export.png"
                block.screenshot(path=str(path))
                shrink(path)
                static_page.close()

                # 7. Run the form's cell again: a new form, still one output, and the old views go quietly.
                form_cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Control+Enter")
                _until_text(page, "Net Carbon Removal, 2025Q2: Preview")
                _settled(page)
                assert form_cell.locator(".jp-OutputArea-child").count() == 1
                assert page.locator(".jp-OutputArea-output .widget-vbox", has_text="Generate batches").count() == 1
                _no_widget_error(page, "running the form's cell again")

                # 8. Notebook 04, from the file browser: Run All sends no fill and no submission; then the report
                # form fills the draft with 2025 Q1's batches and submits it, once, with a confirmation.
                browser_item = page.locator(".jp-DirListing-item", has_text=REPORT_NOTEBOOK)
                if not browser_item.is_visible():
                    page.locator(".jp-SideBar [data-id='filebrowser']").first.click()
                browser_item.dblclick()
                page.wait_for_function(f"() => !!({REPORT_PANEL_JS})", timeout=START_TIMEOUT * 1000)
                _wait_for_session_kernel(page, base, lab_token, REPORT_NOTEBOOK)
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
                page.locator(".lm-Menu-item[data-command='runmenu:run-all']", has_text="Run All Cells").click()
                _wait_all_cells_ran(page, report_cells, panel=REPORT_PANEL_JS)
                assert (_generations(emulator_root, canary, FILLS), _generations(emulator_root, canary,
                                                                                 SUBMISSIONS)) == (0, 0)
                report_form = page.locator(".jp-OutputArea-output .widget-vbox", has_text="Registry report").first
                report_form.wait_for(state="visible")
                report_cell = page.locator(".jp-Notebook .jp-CodeCell", has=report_form)
                assert report_cell.locator(".jp-OutputArea-child").count() == 1  # one output: the widgets
                _no_widget_error(page, "Run All of " + REPORT_NOTEBOOK)
                on_report = {"form_js": REPORT_FORM_JS}
                _click_when_enabled(page, report_form, "Plan", **on_report)
                _until_text(page, "3 added, 0 removed, 0 kept", **on_report)
                _settled(page, **on_report)
                _click_when_enabled(page, report_form, "Fill", **on_report)
                _until_text(page, "Filled: report '2025Q1 Quarterly Report' holds 3 batches", **on_report)
                _settled(page, **on_report)
                assert _generations(emulator_root, canary, FILLS) == 1
                _click_when_enabled(page, report_form, "Submit", **on_report)
                confirm = _button(report_form, "Confirm submit")
                confirm.wait_for(state="visible")
                asked = _text(report_form.locator(".widget-html", has_text="Submit report").first)
                # "... with 3 batches of Net Carbon Removal (t), from 2025-01 to 2025-03 (2025Q1), 238.534 t?"
                total = re.search(r"with 3 batches of Net Carbon Removal \(t\), [^?]*?([\d,.]+) t\?", asked)
                assert "'2025Q1 Quarterly Report'" in asked and "2025-01 to 2025-03" in asked and total, asked
                assert _generations(emulator_root, canary, SUBMISSIONS) == 0  # the question sends nothing
                report_form.scroll_into_view_if_needed()
                image = IMAGES / "report_form.png"
                report_form.screenshot(path=str(image))
                shrink(image)
                confirm.click()
                _until_form(page, "form.querySelector('.widget-hprogress .progress-bar')?.style.width === '100%'",
                            timeout=GENERATE_TIMEOUT, **on_report)
                _until_text(page, f"the registry allocated {total.group(1)} t (3 batches)", timeout=GENERATE_TIMEOUT,
                            **on_report)
                _settled(page, **on_report)
                assert "is complete" in _text(report_form)
                assert _generations(emulator_root, canary, SUBMISSIONS) == 1
                assert _generations(emulator_root, canary, FILLS) == 1
                _no_widget_error(page, "the report form")
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
