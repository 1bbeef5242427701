"""`import mangrove_nb` against `import pandas, requests`, measured side by side in fresh interpreters.

Target (issue 3): at most 1.15x, and none of matplotlib, ipywidgets, nbformat, nbclient or Flask
imported. Run: .venv/bin/python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("matplotlib", "ipywidgets", "nbformat", "nbclient", "nbconvert", "flask")


def timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    timed("import mangrove_nb")  # warm the file cache for both
    ours, base = [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        base.append(timed("import pandas, requests"))
        ours.append(timed("import mangrove_nb"))
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, mangrove_nb; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
        check=True, capture_output=True, text=True).stdout.strip()
    b, o = statistics.median(base), statistics.median(ours)
    print(f"{'import pandas, requests':<26} median {b * 1000:7.1f} ms over {runs} runs")
    print(f"{'import mangrove_nb':<26} median {o * 1000:7.1f} ms over {runs} runs")
    print(f"ratio {o / b:.3f}x (target <= 1.15x); heavy modules imported: {loaded or 'none'}")


if __name__ == "__main__":
    main()
