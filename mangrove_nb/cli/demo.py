"""``mangrove-nb demo``: on a local emulator, generate the quarter where batches are missing and render its report
(or walk the batch-generation cookbook with ``--walk``). SIGTERM and SIGHUP stop it as Ctrl-C does (``_signals``),
as they stop ``mangrove-nb report``: the report's kernel stopped, its files said, the emulator shut down."""

from __future__ import annotations

import argparse

from ._signals import stop_signals_interrupt


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    with stop_signals_interrupt():  # restores the handlers it changes
        return run_demo(batch_seconds=args.batch_seconds, quarter=args.quarter, out_dir=args.out,
                        cookbook=args.walk)
