"""Eight quarterly reports, side by side: one ``mangrove-nb report --quarter 2024Q1..2025Q4`` against eight runs of
``papermill`` + ``jupyter nbconvert --to html``.

Both render the same template (``mangrove_nb.reports.DEFAULT_TEMPLATE``) for the same eight quarters against the same
emulator (started here, in a thread; 2025Q1 to Q3 generated first, so that both years have data; the token and URL
reach every command through its environment). Each command is the venv's own executable, timed from start to exit:

- ours:   ``mangrove-nb report --quarter 2024Q1..2025Q4 --out DIR`` (one process: one kernel per report, the next
          one started and warmed while the current one runs, one read cache for the eight, nbconvert loaded once);
- theirs: for each quarter, ``papermill TEMPLATE OUT.ipynb -p quarter Q -k python3`` then
          ``jupyter nbconvert --to html --no-input OUT.ipynb`` (sixteen processes, one after the other).

The pipelines alternate, and the median of ``--repeat`` rounds is compared. Target (issue 14): ours at most 0.4x
theirs.

Run: .venv/bin/python benchmarks/report_range.py [--repeat 1] [--range 2024Q1..2025Q4]
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

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator
from mangrove_nb.reports import DEFAULT_TEMPLATE, report_range

BIN = Path(sys.executable).parent
TARGET = 0.4


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def ours(span: str, work: Path, env: dict[str, str]) -> float:
    return timed([str(BIN / "mangrove-nb"), "report", "--quarter", span, "--out", str(work / "ours")], env, work)


def theirs(quarters: list[str], work: Path, env: dict[str, str]) -> tuple[float, float]:
    out = work / "theirs"
    out.mkdir(parents=True, exist_ok=True)
    run = export = 0.0
    for quarter in quarters:
        executed = out / f"quarterly_report_{quarter}.ipynb"
        run += timed([str(BIN / "papermill"), str(DEFAULT_TEMPLATE), str(executed), "-p", "quarter", quarter,
                      "-k", "python3", "--no-progress-bar", "--cwd", str(out)], env, work)
        export += timed([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)], env, work)
    return run, export


def generate_2025(emu: Emulator) -> None:
    """2025Q1 to Q3 on the ledgers the emulator's models fill (Q4 lacks a November reading)."""
    with mnb.connect(emu.token, emu.url, show_progress=False, poll_min_interval=0.05, poll_interval=0.1,
                     poll_max_interval=0.2) as client:
        for quarter in ("2025Q1", "2025Q2", "2025Q3"):
            for ledger in ("Net Carbon Removal", "Dry Feedstock Delivered"):
                client.generate(ledger, quarter).wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--range", default="2024Q1..2025Q4", dest="span")
    args = parser.parse_args()
    for tool in ("mangrove-nb", "papermill", "jupyter"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: pip install -e '.[reports]' papermill")
    quarters = [period.label for period in report_range(args.span)]

    with Emulator(batch_seconds=0.01, pickup_seconds=0.01) as emu, \
            tempfile.TemporaryDirectory(prefix="report-range-bench-") as tmp:
        generate_2025(emu)
        env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token,
               "MANGROVE_NB_QUIET": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        print(f"{len(quarters)} quarterly reports ({args.span}), template {DEFAULT_TEMPLATE.name}, emulator {emu.url}, "
              f"{os.cpu_count()} CPUs", flush=True)
        ours_times: list[float] = []
        theirs_times: list[tuple[float, float]] = []
        for round_number in range(1, args.repeat + 1):
            work = Path(tmp) / f"round-{round_number}"
            work.mkdir()
            # Alternate which pipeline goes first, so neither always gets the warmer disk cache.
            if round_number % 2:
                ours_times.append(ours(args.span, work, env))
                theirs_times.append(theirs(quarters, work, env))
            else:
                theirs_times.append(theirs(quarters, work, env))
                ours_times.append(ours(args.span, work, env))
            run, export = theirs_times[-1]
            print(f"  round {round_number}: mangrove-nb report --quarter {args.span} {ours_times[-1]:6.2f} s | "
                  f"{len(quarters)} x papermill {run:6.2f} s + {len(quarters)} x nbconvert {export:6.2f} s = "
                  f"{run + export:6.2f} s", flush=True)
        mine = statistics.median(ours_times)
        other = statistics.median(run + export for run, export in theirs_times)
        ratio = mine / other
        print(f"median of {args.repeat}: ours {mine:.2f} s ({mine / len(quarters):.2f} s a report), papermill + "
              f"nbconvert {other:.2f} s ({other / len(quarters):.2f} s a report), ratio {ratio:.2f}x "
              f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})", flush=True)


if __name__ == "__main__":
    main()
