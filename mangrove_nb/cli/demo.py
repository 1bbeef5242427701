"""``mangrove-nb demo``: on a local emulator, generate the quarter where batches are missing and render its report
(or walk the batch-generation cookbook with ``--walk``)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(batch_seconds=args.batch_seconds, quarter=args.quarter, out_dir=args.out, cookbook=args.walk)
