"""``mangrove-nb emulator``: serve the local Mangrove API emulator until Ctrl-C, printing its URL, a new token
(once) and the environment variables to set."""

from __future__ import annotations

import argparse
import logging
import sys

from ._messages import EXIT_INPUT, one_line


def run(args: argparse.Namespace) -> int:
    import sqlite3

    from ..emulator import Emulator, store
    from ..emulator.seed import PROJECT_ID

    # The store's own error for a file it refuses (not SQLite, a newer schema) says what to do; older stores lack it.
    refused = getattr(store, "StoreError", ())

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        emulator = Emulator(host=args.host, port=args.port, token=args.token, db=args.db,
                            read_only_tokens=tuple(args.read_only_token), batch_seconds=args.batch_seconds,
                            rate_limit=args.rate_limit, control=args.enable_control)
    except OSError as exc:
        print(f"mangrove-nb emulator: cannot listen on {args.host}:{args.port}: {one_line(exc.strerror or exc)}. "
              "Pick another port with --port (0 = any free port).", file=sys.stderr)
        return EXIT_INPUT
    except refused as exc:
        print(f"mangrove-nb emulator: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except sqlite3.Error as exc:
        print(f"mangrove-nb emulator: cannot use {args.db} as the emulator's database ({one_line(exc)}); give --db "
              "a SQLite file in a folder you can write to, or leave --db out to keep the state in memory.",
              file=sys.stderr)
        return EXIT_INPUT
    print(f"Mangrove emulator on {emulator.url}  (state: {args.db or 'in memory'})")
    if args.token is None:
        print(f"Token (shown once): {emulator.token}")
    print(f"  export MANGROVE_API_URL={emulator.url}")
    print("  export MANGROVE_API_TOKEN=<the token>")
    print(f"  export MANGROVE_PROJECT_ID={PROJECT_ID}")
    print("Press Ctrl-C to stop.", flush=True)
    emulator.serve_forever()
    return 0
