"""Quarterly report as HTML and PDF, side by side: ``mangrove-nb report --format html,pdf`` against papermill +
``jupyter nbconvert --to html`` + ``jupyter nbconvert --to webpdf``.

Both render the same template (``mangrove_nb.reports.DEFAULT_TEMPLATE``) for the same quarter against the same
emulator (started here, in a thread; the token and URL reach every command through its environment). Each command is
the venv's own executable, timed from start to exit:

- ours:   ``mangrove-nb report --quarter 2024Q4 --format html,pdf --out DIR`` (one process: one kernel, the HTML
          export, and the system Chromium, launched while the kernel runs, printing that HTML);
- theirs: ``papermill TEMPLATE OUT.ipynb -p quarter 2024Q4 -k python3``, then
          ``jupyter nbconvert --to html --no-input OUT.ipynb``, then
          ``jupyter nbconvert --to webpdf --no-input OUT.ipynb`` (three processes).

nbconvert's webpdf launches only a Chromium that Playwright downloaded (``playwright install chromium``); it is never
downloaded here. When webpdf cannot start a browser, the third step is instead the closest equivalent without our
code: a fresh Python process that prints nbconvert's HTML with Playwright and the system Chromium (``page.pdf()``, A4,
what webpdf does), and the output says so.

The pipelines alternate, and the median of ``--repeat`` rounds is compared. Target (issue 14): ours at most 0.8x
theirs.

Run: .venv/bin/python benchmarks/report_formats.py [--repeat 3] [--quarter 2024Q4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mangrove_nb.emulator import Emulator
from mangrove_nb.reports import DEFAULT_TEMPLATE
from mangrove_nb.reports.pdf import CHROMIUM_ARGS, pdf_browser

BIN = Path(sys.executable).parent
TARGET = 0.8
# The third step when webpdf has no browser: nbconvert's HTML printed by the system Chromium, as webpdf would.
PRINT_HTML = """
import sys
from pathlib import Path
from playwright.sync_api import sync_playwright

html, pdf, executable, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=executable, args=args)
    page = browser.new_page()
    page.emulate_media(media="print")
    page.goto(html.resolve().as_uri(), wait_until="networkidle")
    pdf.write_bytes(page.pdf(format="A4", print_background=True))
    browser.close()
"""


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def ours(quarter: str, work: Path, env: dict[str, str]) -> float:
    out = work / "ours"
    seconds = timed([str(BIN / "mangrove-nb"), "report", "--quarter", quarter, "--format", "html,pdf", "--out",
                     str(out)], env, work)
    if not (out / f"quarterly_report_{quarter}.pdf").is_file():
        raise SystemExit("mangrove-nb report wrote no PDF")
    return seconds


def webpdf_runs(executed: Path, env: dict[str, str]) -> bool:
    """Whether nbconvert's webpdf finds a browser here (it never downloads one: no --allow-chromium-download)."""
    done = subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "webpdf", "--no-input", str(executed)],
                          env=env, cwd=executed.parent, capture_output=True, text=True, timeout=600)
    return done.returncode == 0


def theirs(quarter: str, work: Path, env: dict[str, str], *, webpdf: bool, browser: str) -> tuple[float, float, float]:
    executed = work / "theirs" / f"quarterly_report_{quarter}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    run = timed([str(BIN / "papermill"), str(DEFAULT_TEMPLATE), str(executed), "-p", "quarter", quarter,
                 "-k", "python3", "--no-progress-bar", "--cwd", str(executed.parent)], env, work)
    html = timed([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)], env, work)
    if webpdf:
        pdf = timed([str(BIN / "jupyter"), "nbconvert", "--to", "webpdf", "--no-input", str(executed)], env, work)
    else:
        pdf = timed([sys.executable, "-c", PRINT_HTML, str(executed.with_suffix(".html")),
                     str(executed.with_suffix(".pdf")), browser, *CHROMIUM_ARGS], env, work)
    if not executed.with_suffix(".pdf").is_file():
        raise SystemExit("the papermill + nbconvert pipeline wrote no PDF")
    return run, html, pdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quarter", default="2024Q4")
    args = parser.parse_args()
    for tool in ("mangrove-nb", "papermill", "jupyter"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: pip install -e '.[reports,pdf]' papermill")
    browser = pdf_browser()  # a one-line error when Playwright or the system Chromium is missing

    with Emulator() as emu, tempfile.TemporaryDirectory(prefix="report-formats-bench-") as tmp:
        env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token,
               "MANGROVE_NB_QUIET": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        root = Path(tmp)
        probe = root / "probe"
        probe.mkdir()
        theirs_pdf = "jupyter nbconvert --to webpdf"
        executed = probe / f"quarterly_report_{args.quarter}.ipynb"
        timed([str(BIN / "papermill"), str(DEFAULT_TEMPLATE), str(executed), "-p", "quarter", args.quarter, "-k",
               "python3", "--no-progress-bar"], env, probe)  # also warms the disk cache for both pipelines
        webpdf = webpdf_runs(executed, env)
        if not webpdf:
            theirs_pdf = "Playwright print (system Chromium)"
            print("nbconvert --to webpdf cannot run here: it launches only a Chromium that Playwright downloaded, and "
                  "none is. Their PDF step is instead a plain Playwright print of nbconvert's HTML with the system "
                  f"Chromium ({browser}), in a process of its own.", flush=True)
        print(f"Quarterly report {args.quarter} as HTML and PDF, template {DEFAULT_TEMPLATE.name}, emulator {emu.url}, "
              f"{os.cpu_count()} CPUs", flush=True)
        ours_times: list[float] = []
        theirs_times: list[tuple[float, float, float]] = []
        for round_number in range(1, args.repeat + 1):
            work = root / f"round-{round_number}"
            work.mkdir()
            if round_number % 2:  # alternate which pipeline goes first
                ours_times.append(ours(args.quarter, work, env))
                theirs_times.append(theirs(args.quarter, work, env, webpdf=webpdf, browser=browser))
            else:
                theirs_times.append(theirs(args.quarter, work, env, webpdf=webpdf, browser=browser))
                ours_times.append(ours(args.quarter, work, env))
            run, html, pdf = theirs_times[-1]
            print(f"  round {round_number}: mangrove-nb report --format html,pdf {ours_times[-1]:5.2f} s | papermill "
                  f"{run:5.2f} s + nbconvert html {html:5.2f} s + {theirs_pdf} {pdf:5.2f} s = "
                  f"{run + html + pdf:5.2f} s", flush=True)
        mine = statistics.median(ours_times)
        other = statistics.median(sum(parts) for parts in theirs_times)
        ratio = mine / other
        print(f"median of {args.repeat}: ours {mine:.2f} s, papermill + nbconvert html + {theirs_pdf} {other:.2f} s, "
              f"ratio {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})", flush=True)


if __name__ == "__main__":
    main()
