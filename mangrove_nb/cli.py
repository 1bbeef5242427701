"""The ``mangrove-nb`` command: ``emulator`` (serve the local API), ``demo`` (the cookbook, walked) and ``report``
(render a quarterly report notebook and its HTML)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import Emulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        emulator = Emulator(host=args.host, port=args.port, token=args.token, db=args.db,
                            read_only_tokens=tuple(args.read_only_token), batch_seconds=args.batch_seconds,
                            rate_limit=args.rate_limit, control=args.enable_control)
    except OSError as exc:
        print(f"mangrove-nb emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
              "Pick another port with --port (0 = any free port).", file=sys.stderr)
        return 2
    print(f"Mangrove emulator on {emulator.url}  (state: {args.db or 'in memory'})")
    if args.token is None:
        print(f"Token (shown once): {emulator.token}")
    print(f"  export MANGROVE_API_URL={emulator.url}")
    print("  export MANGROVE_API_TOKEN=<the token>")
    print("Press Ctrl-C to stop.", flush=True)
    emulator.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(batch_seconds=args.batch_seconds, quarter=args.quarter, out_dir=args.out, cookbook=args.walk)


def _report(args: argparse.Namespace) -> int:
    from .errors import ConfigurationError, MangroveError
    from .periods import PeriodError
    from .reports import ReportError, quarter_period, render_report

    try:
        quarter_period(args.quarter)
        paths = render_report(args.quarter, ledgers=args.ledger or None, out_dir=args.out,
                              generate_missing=args.generate_missing, progress=True)
    except (PeriodError, ConfigurationError) as exc:
        print(f"mangrove-nb report: {exc}", file=sys.stderr)
        return 2
    except (ReportError, MangroveError) as exc:
        print(f"mangrove-nb report: {exc}", file=sys.stderr)
        return 1
    print(paths.html)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .emulator import DEFAULT_HOST, DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="mangrove-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emu = commands.add_parser("emulator", help="serve the local Mangrove API emulator until Ctrl-C")
    emu.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    emu.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = a free port)")
    emu.add_argument("--token", help="the API token to accept (default: a new one, printed once)")
    emu.add_argument("--read-only-token", action="append", default=[], metavar="TOKEN",
                     help="also accept TOKEN for reads only: writes answer 403 (repeatable)")
    emu.add_argument("--db", help="SQLite file to keep state in across restarts (default: in memory)")
    emu.add_argument("--batch-seconds", type=float, default=1.0,
                     help="seconds the model spends on each batch (default 1.0: a quarter takes about 3.5 s)")
    emu.add_argument("--rate-limit", type=int, default=1000, help="requests per minute per token (default 1000)")
    emu.add_argument("--enable-control", action="store_true",
                     help="expose the test-only /_emulator endpoints (fault injection, counters, reset)")
    emu.set_defaults(run=_emulator)

    demo = commands.add_parser("demo", help="on a local emulator: generate a quarter where missing and render its "
                                            "report (or --walk the batch-generation cookbook)")
    demo.add_argument("--batch-seconds", type=float, default=1.0, help="emulated model speed (default 1.0)")
    demo.add_argument("--quarter", default="2025Q1", help="the quarter to generate and report (default 2025Q1)")
    demo.add_argument("--out", default="reports", metavar="DIR", help="output directory (default: reports)")
    demo.add_argument("--walk", action="store_true",
                      help="instead, walk the cookbook's six steps over plain HTTP, printing each result")
    demo.set_defaults(run=_demo)

    report = commands.add_parser(
        "report", help="render the quarterly report (executed .ipynb and offline HTML); prints the HTML's path",
        description="Render notebooks/03_quarterly_report.ipynb for a quarter: the executed notebook and a "
                    "self-contained HTML. The API token and URL come from MANGROVE_API_TOKEN and MANGROVE_API_URL.")
    report.add_argument("--quarter", required=True, help="the calendar quarter, e.g. 2025Q1")
    report.add_argument("--ledger", action="append", default=[], metavar="ID",
                        help="a ledger id to report on (repeatable; default: every ledger with a model)")
    report.add_argument("--out", default="reports", metavar="DIR", help="output directory (default: reports)")
    report.add_argument("--generate-missing", action="store_true",
                        help="first generate the quarter's batches where the preview finds some missing")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
