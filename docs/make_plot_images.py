"""Draw the README's example figures from a local emulator's seeded data.

    .venv/bin/python docs/make_plot_images.py

Writes docs/images/multi_ledger.png (Net Carbon Removal and Biochar Produced over 2024),
docs/images/quarter_summary.png (Net Carbon Removal, 2024Q4) and docs/images/feedstock.png (Dry Feedstock
Delivered over 2024, by feedstock).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the figures are only saved

import mangrove_nb
from mangrove_nb.plots import plot_batches, plot_quarter_summary
from mangrove_nb.testing import emulator

IMAGES = Path(__file__).resolve().parent / "images"
DPI = 150


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with emulator() as emu:
        client = mangrove_nb.connect(emu.token, emu.url, show_progress=False)
        ids = {row.name: row.id for row in client.ledgers().itertuples()}
        removal, biochar = ids["Net Carbon Removal"], ids["Biochar Produced"]

        both = client.batches([removal, biochar], "2024")
        ax = plot_batches(both, period="2024", title="Net Carbon Removal and Biochar Produced, 2024")
        _save(ax, "multi_ledger.png")

        quarter = client.batches(removal, "2024Q4")
        _save(plot_quarter_summary(quarter, "2024Q4"), "quarter_summary.png")

        feedstock = client.batches(ids["Dry Feedstock Delivered"], "2024")
        _save(plot_batches(feedstock, period="2024"), "feedstock.png")


def _save(ax: matplotlib.axes.Axes, name: str) -> None:
    path = IMAGES / name
    ax.figure.savefig(path, dpi=DPI, facecolor="white")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
