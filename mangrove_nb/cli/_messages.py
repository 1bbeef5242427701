"""What the ``mangrove-nb`` command says, and with which exit code: every message on one line, cleaned and redacted
(``one_line``); the Python API's advice put in the command's words (``cli_words``); an expected failure
(``failed``), a missing optional library (``missing``, naming its extra), an interrupt (``interrupted``: Ctrl-C,
or the SIGTERM or SIGHUP that ``_signals`` turned into one) and a bug (``unexpected``, its traceback redacted)."""

from __future__ import annotations

import re
import sys
import traceback

from . import _signals

# The optional libraries, and the extra of pyproject.toml that installs each.
EXTRAS = {"nbformat": "reports", "nbclient": "reports", "nbconvert": "reports", "ipykernel": "reports",
          "jupyter_client": "reports", "flask": "emulator", "werkzeug": "emulator", "matplotlib": "notebook"}
# Input the user must correct: exit code 2 (argparse's own, for usage errors).
EXIT_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


def one_line(text: object) -> str:
    """A message on one line, redacted of every registered token, safe to print (``_text.one_line``: a server's or
    a kernel's text cannot move the cursor, forge a second line or reorder what a reader sees)."""
    from .._text import one_line as clean

    return clean(text)


# Advice the Python API's errors give, and what the command says instead: (pattern, replacement, commands it is
# for; None: every command). Matched on the one-line message, in order.
_PYTHON_ADVICE: tuple[tuple[re.Pattern[str], str, frozenset[str] | None], ...] = tuple(
    (re.compile(pattern), replacement, frozenset(commands.split()) if commands else None)
    for pattern, replacement, commands in (
        (r"pass token=\.\.\. to connect\(\), or set the MANGROVE_API_TOKEN environment variable before starting "
         r"Python or Jupyter \(for example in a \.env file loaded by your shell; never paste a token into a notebook "
         r"cell that gets saved\)", "set the MANGROVE_API_TOKEN environment variable in the shell that runs the "
         "command (export MANGROVE_API_TOKEN=..., or a .env file your shell loads)", ""),
        (r"pass token=\.\.\. or set MANGROVE_API_TOKEN", "set MANGROVE_API_TOKEN to a valid token", ""),
        (r" or connect\(base_url=\.\.\.\)", "", ""),
        (r"pass project_id=\.\.\., or set MANGROVE_PROJECT_ID (\([^()]*\)), or connect\(project_id=\.\.\.\)",
         r"pass --project ID, or set MANGROVE_PROJECT_ID \1", "report"),
        (r"pass project_id=\.\.\., or set MANGROVE_PROJECT_ID (\([^()]*\)), or connect\(project_id=\.\.\.\)",
         r"set MANGROVE_PROJECT_ID \1", ""),
        (r"Pass project_id=\.\.\. to connect\(\) or set MANGROVE_PROJECT_ID", "Set MANGROVE_PROJECT_ID", ""),
        (r"pass template= the path", "give --template the path", "report"),
        # The registry's advice, in the command's words (its options, --list, --reconcile).
        (r"([Nn])ame it with ledgers=\['([^']*)'\] \(--ledger on the command line\)", r"\1ame it with --ledger '\2'",
         "registry"),
        (r"name them with ledgers=\[\.\.\.\] in client\.report_candidates \(--ledger on the command line, "
         r"ReportForm\(\.\.\., ledgers=\[\.\.\.\]\) in the form\)", "name them with --ledger, once per ledger",
         "registry"),
        (r"\(client\.report_candidates\(report, period\) takes", "(without --ledger, the command takes", "registry"),
        (r"name them: ledgers=\[\.\.\.\] in plan_report, fill_report or report_candidates \(--ledger, once per "
         r"ledger, on the command line\)", "name them with --ledger, once per ledger", "registry"),
        # A batch made with a skipped input: deleting a batch is for Python only, and so is generating a month.
        (r"(client\.delete_batch\('[^']*', even_if_complete=True\)) and generate ([0-9]{4}-[0-9]{2}) again "
         r"\((client\.generate\('[^']*', '[0-9]{4}-[0-9]{2}'\))\)", r"\1 and generate \2 again (\3), in Python",
         "registry"),
        # Leaving one batch out: the command fills the report with every complete batch of the quarter, so it cannot.
        (r"leave it out \(fill the report without it: client\.fill_report\(('[^']*'), batches_without_it\)\)",
         r"leave it out, which this command cannot do (it takes every complete batch of the quarter): in Python, "
         r"client.fill_report(\1, batches_without_it), then plan and submit it there", "registry"),
        # Two complete batches of one partition: choosing and deleting one is for Python too.
        (r"Check which of them is right \(client\.calculations\((\[[^\]]*\])\) shows their terms\), delete the other "
         r"with (client\.delete_batch\(its id, even_if_complete=True\)), and plan again\.",
         r"Check which of them is right (in Python, client.calculations(\1) shows their terms), delete the other "
         r"(\2, in Python), and run the command again.", "registry"),
        (r"client\.generate\(('[^']*'), '([0-9]{4}(?:Q[1-4])?)'\)",
         r"mangrove-nb report --quarter \2 --ledger \1 --generate-missing generates what is missing", "registry"),
        (r"client\.reconcile_report\(('[^']*')\)", r"mangrove-nb registry --reconcile --report \1", "registry"),
        (r"client\.report_task\('[^']*', [^)]*\)\.wait\(\)", "mangrove-nb registry --list (the report's status)",
         "registry"),
        (r"client\.fill_report\(('[^']*'), batches\)",
         r"mangrove-nb registry --quarter QUARTER --report \1 --submit, which fills it", "registry"),
        (r"(client\.submit_report\('[^']*', even_if_unlisted=True\))", r"\1 in Python", "registry"),
        (r"client\.submit_report\(('[^']*')\)", r"mangrove-nb registry --quarter QUARTER --report \1 --submit",
         "registry"),
        (r"client\.report\('[^']*'\)", "mangrove-nb registry --list", "registry"),
        (r"client\.reports\([^()]*\)", "mangrove-nb registry --list", "registry"),
        (r"Read it again \(plan it, or Plan in the form\)", "Run the command again (it plans the report as it is)",
         "registry"),
        (r"pass allow_empty=True to plan_report and fill_report", "fill it with client.fill_report(..., "
         "allow_empty=True) in Python", "registry"),
        (r"(--[a-z][a-z-]*) \([a-z_]+=[^()]*\)", r"\1", ""),  # "--force (force=True)": the option alone
    ))


def cli_words(command: str, message: str) -> str:
    """``message`` with the Python API's advice put in the command's words (``_PYTHON_ADVICE``)."""
    for pattern, replacement, commands in _PYTHON_ADVICE:
        if commands is None or command in commands:
            message = pattern.sub(replacement, message)
    return message


def failed(command: str, exc: BaseException) -> int:
    """Print an expected failure on one line and return its exit code."""
    from ..errors import (
        AuthenticationError,
        ConfigurationError,
        NotFoundError,
        PeriodError,
        PermissionDeniedError,
        ReportError,
        ValidationError,
    )

    notes = " ".join(getattr(exc, "__notes__", []))  # such as how to re-attach to a task that goes on
    print(f"mangrove-nb {command}: {cli_words(command, one_line(f'{exc} {notes}'))}", file=sys.stderr, flush=True)
    # An argument refused before anything was sent (an unknown ledger name, say) is input to correct too.
    refused = isinstance(exc, ValidationError) and exc.status_code is None
    # A 404 where the API always answers (/ledgers) means the base URL is wrong: configuration to correct.
    wrong_url = isinstance(exc, NotFoundError) and NotFoundError.base_url_hint in str(exc)
    # A token the API rejects (401) or that may not do this (403) is configuration to correct, in the command's
    # process or in a report cell (whose error is chained to a copy naming the cell's exception).
    rejected = (AuthenticationError.__name__, PermissionDeniedError.__name__)
    token = isinstance(exc, AuthenticationError | PermissionDeniedError) or (
        isinstance(exc, ReportError) and getattr(exc.__cause__, "ename", None) in rejected)
    to_correct = isinstance(exc, ConfigurationError | PeriodError) or refused or wrong_url or token
    return EXIT_INPUT if to_correct else EXIT_FAILED


def missing(command: str, exc: ModuleNotFoundError) -> int:
    """A library of an optional part (an extra) is not installed: say which, and how to install it."""
    package = (exc.name or "").split(".")[0]
    print(f"mangrove-nb {command}: this needs {package}, which is not installed in this Python; install it with "
          f"pip install 'mangrove_nb[{EXTRAS[package]}]'.", file=sys.stderr, flush=True)
    return EXIT_FAILED


def interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """Ctrl-C (exit 130), or SIGTERM or SIGHUP during a report (exit 128 + the signal's number), in one line."""
    import signal

    notes = " ".join(getattr(exc, "__notes__", []))
    stopped = _signals.take_stopped()
    how = f"stopped ({signal.Signals(stopped).name})" if stopped is not None else "interrupted (Ctrl-C)"
    print(f"mangrove-nb {command}: {how}. {one_line(notes)}".rstrip(), file=sys.stderr, flush=True)
    return 128 + stopped if stopped is not None else EXIT_INTERRUPTED


def unexpected(command: str, exc: BaseException) -> int:
    """A bug: the traceback helps to report it, redacted of the token like every message (never with locals)."""
    from ..errors import redact

    text = redact("".join(traceback.format_exception(exc)))
    print(f"mangrove-nb {command}: unexpected error (a bug; please report it with what follows):\n{text}",
          file=sys.stderr, end="", flush=True)
    return EXIT_FAILED
