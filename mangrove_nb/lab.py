"""``python -m mangrove_nb.lab``: the local emulator plus JupyterLab on ``notebooks/``, in one command.

Starts the emulator in this process (a background thread, loopback, in-memory state unless ``--db``), then runs
``jupyter lab`` on the notebooks folder with ``MANGROVE_API_URL``, ``MANGROVE_API_TOKEN`` and
``MANGROVE_PROJECT_ID`` set in Lab's environment only (so every kernel it starts connects to the emulator
with ``mnb.connect()``). The token is printed once, here, for the user; it is never written to a file. When Lab
exits (Ctrl-C, or File > Shut Down in Lab), the emulator stops.

Arguments after ``--`` go to ``jupyter lab`` unchanged (``python -m mangrove_nb.lab -- --port 9999``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

REPO_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mangrove_nb.lab",
        description="Start the local Mangrove emulator and JupyterLab on the notebooks, connected to it.")
    parser.add_argument("--notebook-dir", type=Path, default=None,
                        help="folder Lab opens (default: the repository's notebooks/, else the current folder)")
    parser.add_argument("--emulator-port", type=int, default=0, help="emulator port (default 0: any free port)")
    parser.add_argument("--db", default=None, help="SQLite file for the emulator's state (default: in memory)")
    parser.add_argument("--batch-seconds", type=float, default=1.0,
                        help="seconds the emulated model spends on each batch (default 1.0)")
    parser.add_argument("lab_args", nargs="*", metavar="-- LAB_ARG",
                        help="arguments passed to `jupyter lab` unchanged (after --)")
    return parser


def _notebook_dir(chosen: Path | None) -> Path:
    if chosen is not None:
        return chosen.resolve()
    return REPO_NOTEBOOKS if REPO_NOTEBOOKS.is_dir() else Path.cwd()


def _wait(process: subprocess.Popen[bytes]) -> int:
    """Wait for Lab. Ctrl-C or SIGTERM here stops Lab cleanly with SIGTERM (it shuts its kernels down)."""

    def stop_lab(*_: object) -> None:
        if process.poll() is None:
            process.terminate()

    signal.signal(signal.SIGINT, stop_lab)
    signal.signal(signal.SIGTERM, stop_lab)
    return process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if importlib.util.find_spec("jupyterlab") is None:
        print("JupyterLab is not installed in this environment: pip install -e '.[lab]' (or `make lab`).",
              file=sys.stderr)
        return 2
    notebooks = _notebook_dir(args.notebook_dir)
    if not notebooks.is_dir():
        print(f"No such folder: {notebooks}", file=sys.stderr)
        return 2

    from .emulator import Emulator

    try:
        emulator = Emulator(port=args.emulator_port, db=args.db, batch_seconds=args.batch_seconds)
    except OSError as exc:
        print(f"Cannot start the emulator on port {args.emulator_port}: {exc.strerror or exc}. "
              "Pick another with --emulator-port (0 = any free port).", file=sys.stderr)
        return 2
    emulator.start()
    try:
        from .emulator.seed import PROJECT_ID

        env = dict(os.environ, MANGROVE_API_URL=emulator.url, MANGROVE_API_TOKEN=emulator.token,
                   MANGROVE_PROJECT_ID=str(PROJECT_ID))
        print(f"Mangrove emulator on {emulator.url}  (state: {args.db or 'in memory'}; project {PROJECT_ID})")
        print(f"Token (shown once; already set in JupyterLab's environment): {emulator.token}")
        print(f"Starting JupyterLab on {notebooks} (Ctrl-C stops Lab and the emulator)...", flush=True)
        command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebooks}", *args.lab_args]
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
            command.append("--allow-root")  # containers often run as root; Lab refuses it otherwise
        process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter, fixed arguments
        # Ctrl-C or a SIGTERM to this launcher stops Lab first (in _wait), then (below) the emulator.
        try:
            return _wait(process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        emulator.stop()
        print("Mangrove emulator stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
