"""The ``mangrove-nb`` command: ``emulator`` (serve the local API), ``demo`` (on a local emulator: the quarter
generated where missing and its report; ``--walk`` walks the batch-generation cookbook), ``report`` (render a
quarterly report notebook and its HTML, PDF or workbook), ``notebooks`` (copy the starter notebooks and the report
template into a folder, for JupyterLab) and ``registry`` (plan, fill and submit a registry report).

Every expected failure (a bad argument, a missing or malformed token, a failing report cell, an API error...)
is one line on stderr, ``mangrove-nb COMMAND: what went wrong and how to fix it``, with exit code 2 for input
to correct (arguments, configuration, a token the API rejects with 401 or 403, the quarter) and 1 otherwise; Ctrl-C
during a report is one line and exit code 130, and SIGTERM or SIGHUP during one (``timeout``, systemd, a closed
terminal) is handled the same way, its cleanup included: one line, exit code 128 + the signal (143, 129). Nothing
prints a traceback except an unexpected error (a bug), and that one is redacted of the token like every message.
The errors are the Python API's: advice worded for Python (``pass token=... to connect()``, ``--force
(force=True)``) is put in the command's words here (``_messages.cli_words``).

The package: ``_parser`` (``build_parser``: the commands, their options, and the argument types that refuse bad
input), one module per command (``emulator``, ``demo``, ``report``, ``notebooks``, ``registry``: each a
``run(args)``), ``_messages`` (one line, exit codes, the advice in the command's words, each kind of failure) and
``_signals`` (SIGTERM and SIGHUP turned into Ctrl-C while a report renders). ``main`` (here) runs a command and
turns what it raises into one of those messages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ._messages import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXTRAS,
    failed,
    interrupted,
    missing,
    one_line,
    unexpected,
)
from ._parser import DESCRIPTION, build_parser

__all__ = ["DESCRIPTION", "EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXTRAS", "build_parser",
           "main", "one_line"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; Ctrl-C at any point (the imports of a command's libraries included) is one line, exit 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while parsing or importing, before a command could say it
        print("mangrove-nb: interrupted (Ctrl-C).", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mangrove-nb ... | head`: the reader left; nothing to say, no traceback
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    from ..errors import MangroveError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MangroveError as exc:
        return failed(args.command, exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRAS:
            return unexpected(args.command, exc)
        return missing(args.command, exc)
    except KeyboardInterrupt as exc:
        return interrupted(args.command, exc)
    except BrokenPipeError:
        raise  # the reader of our output left (`| head`): main() ends quietly
    except Exception as exc:
        return unexpected(args.command, exc)
