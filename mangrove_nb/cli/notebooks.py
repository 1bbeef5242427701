"""``mangrove-nb notebooks``: copy the starter notebooks and the report template into a folder, whole or not at
all, and print how to open them."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..starter import copy_notebooks, next_steps

    written = copy_notebooks(args.dir, force=args.force)
    print(f"Wrote {len(written)} notebooks to {args.dir}:")
    for path in written:
        print(f"  {path}")
    print("\n".join(next_steps(args.dir)))
    return 0
