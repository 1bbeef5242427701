"""`import mangrove_nb` against `import pandas, requests`, measured side by side in fresh interpreters.

Four imports, interleaved: the baseline (pandas and requests), the front door (``import mangrove_nb``: the client
loads on first use), the console script's import (``from mangrove_nb.cli import main``: before ``main`` runs,
Ctrl-C cannot be turned into one line, so it should take milliseconds), and the front door with the client
loaded (``mangrove_nb.connect`` touched: what a notebook's first cell pays).

Target (issue 3): the client loaded at most 1.15x the baseline, and none of matplotlib, ipywidgets, nbformat,
nbclient or Flask imported; since issue 13 the bare front door and the command's import load neither pandas nor
requests. Run: .venv/bin/python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("matplotlib", "ipywidgets", "nbformat", "nbclient", "nbconvert", "flask")
IMPORTS = {
    "import pandas, requests": "import pandas, requests",
    "import mangrove_nb": "import mangrove_nb",
    "from mangrove_nb.cli import main": "from mangrove_nb.cli import main",
    "mangrove_nb.connect (client loaded)": "import mangrove_nb; mangrove_nb.connect",
}


def timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def loaded(code: str, names: tuple[str, ...]) -> str:
    probe = f"{code}\nimport sys; print(','.join(m for m in {names!r} if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    return found or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    timed(IMPORTS["mangrove_nb.connect (client loaded)"])  # warm the file cache for all
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(runs):  # interleaved, so drift in machine load hits all alike
        for name, code in IMPORTS.items():
            times[name].append(timed(code))
    base = statistics.median(times["import pandas, requests"])
    for name, code in IMPORTS.items():
        median = statistics.median(times[name])
        heavy = "" if name.startswith("import pandas") else \
            f"; loads {loaded(code, (*HEAVY, 'pandas', 'requests'))}"
        print(f"{name:<36} median {median * 1000:7.1f} ms over {runs} runs, {median / base:.3f}x{heavy}")
    print("target: the client loaded <= 1.15x, with none of " + ", ".join(HEAVY))


if __name__ == "__main__":
    main()
