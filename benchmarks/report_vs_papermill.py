"""Quarterly report, side by side: ``mangrove-nb report`` against ``papermill`` + ``jupyter nbconvert``.

Both render the same template (``mangrove_nb.reports.DEFAULT_TEMPLATE``, the package's
``reports/templates/quarterly_report.ipynb``) for the same quarter against the same emulator (started here, in a
thread; the token and URL reach every command through its environment).

From a shell (``--mode cli``), each command the venv's own executable, timed from start to exit:

- ours:   ``mangrove-nb report --quarter 2024Q4 --out DIR`` (build, execute in one kernel, export HTML:
          one process);
- theirs: ``papermill TEMPLATE OUT.ipynb -p quarter 2024Q4 -k python3`` then
          ``jupyter nbconvert --to html --no-input OUT.ipynb`` (two processes, two tools).

From Python (``--mode api``), as an orchestrator would call them: ``render_report(...)`` against
``papermill.execute_notebook(...)`` followed by the same ``jupyter nbconvert`` command.

The pipelines alternate, and the median of ``--repeat`` rounds is compared (``--mode both``, the default,
prints both). Target (issue 5): ours at most 0.8x theirs.

Run: .venv/bin/python benchmarks/report_vs_papermill.py [--repeat 3] [--quarter 2024Q4] [--mode cli|api|both]
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
from mangrove_nb.reports import DEFAULT_TEMPLATE, render_report

BIN = Path(sys.executable).parent
TARGET = 0.8


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def ours(mode: str, quarter: str, work: Path, env: dict[str, str]) -> float:
    out = work / f"ours-{mode}"
    if mode == "cli":
        return timed([str(BIN / "mangrove-nb"), "report", "--quarter", quarter, "--out", str(out)], env, work)
    start = time.perf_counter()
    render_report(quarter, out_dir=out, base_url=env["MANGROVE_API_URL"], token=env["MANGROVE_API_TOKEN"],
                  progress=False)
    return time.perf_counter() - start


def theirs(mode: str, quarter: str, work: Path, env: dict[str, str]) -> tuple[float, float]:
    executed = work / f"theirs-{mode}" / f"quarterly_report_{quarter}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    if mode == "cli":
        run = timed([str(BIN / "papermill"), str(DEFAULT_TEMPLATE), str(executed), "-p", "quarter", quarter,
                     "-k", "python3", "--no-progress-bar", "--cwd", str(executed.parent)], env, work)
    else:
        import papermill

        start = time.perf_counter()
        papermill.execute_notebook(str(DEFAULT_TEMPLATE), str(executed), parameters={"quarter": quarter},
                                   kernel_name="python3", progress_bar=False, cwd=str(executed.parent))
        run = time.perf_counter() - start
    export = timed([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)], env, work)
    return run, export


def compare(mode: str, rounds: int, quarter: str, root: Path, env: dict[str, str]) -> float:
    ours_times: list[float] = []
    theirs_times: list[tuple[float, float]] = []
    label = "mangrove-nb report" if mode == "cli" else "render_report()   "
    other = "papermill" if mode == "cli" else "execute_notebook()"
    for round_number in range(1, rounds + 1):
        work = root / f"{mode}-{round_number}"
        work.mkdir()
        # Alternate which pipeline goes first, so neither always gets the warmer disk cache.
        if round_number % 2:
            ours_times.append(ours(mode, quarter, work, env))
            theirs_times.append(theirs(mode, quarter, work, env))
        else:
            theirs_times.append(theirs(mode, quarter, work, env))
            ours_times.append(ours(mode, quarter, work, env))
        run, export = theirs_times[-1]
        print(f"  {mode} round {round_number}: {label} {ours_times[-1]:5.2f} s | {other} {run:5.2f} s "
              f"+ nbconvert {export:5.2f} s = {run + export:5.2f} s", flush=True)
    mine = statistics.median(ours_times)
    theirs_median = statistics.median(run + export for run, export in theirs_times)
    ratio = mine / theirs_median
    print(f"{mode}: median of {rounds}: ours {mine:.2f} s, papermill + nbconvert {theirs_median:.2f} s, "
          f"ratio {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})", flush=True)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quarter", default="2024Q4")
    parser.add_argument("--mode", choices=("cli", "api", "both"), default="both")
    args = parser.parse_args()
    for tool in ("mangrove-nb", "papermill", "jupyter"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: pip install -e '.[reports]' papermill")

    with Emulator() as emu, tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token,
               "MANGROVE_NB_QUIET": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        os.environ.update(env)  # the API mode's kernels inherit this process's environment
        print(f"Quarterly report {args.quarter}, template {DEFAULT_TEMPLATE.name}, emulator {emu.url}, "
              f"{os.cpu_count()} CPUs")
        for mode in ("cli", "api") if args.mode == "both" else (args.mode,):
            compare(mode, args.repeat, args.quarter, Path(tmp), env)


if __name__ == "__main__":
    main()
