"""Make the README's pictures of the notebook forms: what a saved notebook shows without a kernel.

    .venv/bin/python docs/make_form_image.py

Starts an emulator, runs a GenerationForm on Net Carbon Removal, 2025Q1, from code (preview, generate,
confirm, wait) and a BatchExplorer on Net Carbon Removal and Biochar Produced for 2024, writes each one's
static HTML (``form.static_html``: the block left in the cell output) to a temporary file, and screenshots
it with headless Chromium into ``docs/images/generation_form.png`` and ``docs/images/batch_explorer.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mangrove_nb as mnb
from mangrove_nb.forms import BatchExplorer, GenerationForm
from mangrove_nb.testing import emulator

IMAGES = Path(__file__).resolve().parent / "images"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WINDOW = (1100, 900)
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="margin:16px;background:#ffffff">{body}</body></html>
"""


def find_chromium(wait: float = 600.0) -> str:
    """The Chromium binary, waiting for it if it is being installed right now."""
    deadline = time.monotonic() + wait
    while True:
        found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
        if found:
            return found
        if time.monotonic() > deadline:
            sys.exit(f"{CHROMIUM} not found; install Chromium or set CHROMIUM=/path/to/chromium.")
        time.sleep(5)


def screenshot(static_html: str, target: Path, title: str) -> None:
    """Render one form's static HTML in headless Chromium and save the window as a PNG."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="mnb-shot-") as tmp:
        page = Path(tmp) / "form.html"
        page.write_text(PAGE.format(title=title, body=static_html), encoding="utf-8")
        profile = Path(tmp) / "profile"
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
            f"--screenshot={target}", page.as_uri(),
        ]
        target.unlink(missing_ok=True)
        subprocess.run(command, check=True, timeout=120, capture_output=True)  # noqa: S603 (our own argv, no shell)
    if not target.exists() or target.stat().st_size == 0:
        sys.exit(f"Chromium wrote no screenshot to {target}.")
    print(f"wrote {target}")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with emulator(batch_seconds=0.05) as emu, mnb.connect(emu.token, emu.url, show_progress=False,
                                                          poll_min_interval=0.1, poll_interval=0.2,
                                                          poll_max_interval=0.5) as client:
        form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
        form.preview()
        print(form.generate())
        form.confirm()
        form.wait(timeout=60)
        screenshot(form.static_html, IMAGES / "generation_form.png", "Generation form")

        explorer = BatchExplorer(client, ["Net Carbon Removal", "Biochar Produced"], "2024")
        screenshot(explorer.static_html, IMAGES / "batch_explorer.png", "Batch explorer")


if __name__ == "__main__":
    main()
