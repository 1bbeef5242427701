"""Generate what a report's period is missing (``generate_missing_batches``): ledger by ledger, only what the
preview counts, with a message for each ledger skipped or generated.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mangrove_nb.errors import MangroveError, ReportError
from mangrove_nb.frames import can_generate

from ._text import _one_line, _plural
from .sections.ledgers import select_ledgers

if TYPE_CHECKING:
    from mangrove_nb import Client, Period


def _generate_for_report(client: Client, period: Period, ledgers: Sequence[str] | None, *, progress: bool) -> None:
    """``generate_missing_batches``, with a ledger selection it cannot use (an unknown id) as a ``ReportError``."""
    problem = None
    try:
        generate_missing_batches(client, period, ledgers, progress=progress)
    except MangroveError:
        raise
    except (ValueError, TypeError) as exc:  # from select_ledgers: unknown ids, or no ledger with a model
        problem = _one_line(str(exc))
    if problem is not None:
        raise ReportError(f"Cannot generate the missing batches of {period.label}: {problem}") from None


def generate_missing_batches(client: Client, period: Period, ledgers: Sequence[str] | None, *,
                             progress: bool = True) -> list[str]:
    """Generate ``period`` on the ledgers whose preview counts batches to make; returns the ledgers generated.

    Ledgers without a model and ledgers with manual-select inputs (which need a choice of upstream batches)
    are skipped with a message. The preview is asked again right before each generation, so a ledger whose
    batches were made by an earlier one (models that run concurrently) is not generated twice; the client's
    own pre-checks guard against duplicates as well.
    """
    all_ledgers = client.ledgers()
    chosen = select_ledgers(all_ledgers, ledgers)
    candidates: list[tuple[int, str, str]] = []
    for row in chosen.itertuples():
        if not can_generate(row):
            _say(progress, f"Not generating {row.name} ({row.id}): it has no model.")
            continue
        inputs = client.required_inputs(row.id)
        if bool(inputs["is_manual_select"].fillna(False).any()):
            _say(progress, f"Not generating {row.name} ({row.id}): its manual-select inputs need a choice of "
                           "upstream batches (use the generation form or client.generate(..., data_point_ids=)).")
            continue
        preview = client.preview(row.id, period)
        reach = int((preview["count"] > 0).sum())
        if reach:
            candidates.append((-reach, str(row.name), str(row.id)))
    generated: list[str] = []
    # Ledgers whose generation also fills other ledgers (models that run concurrently) go first, so those
    # others then preview 0 and need no request of their own.
    for _, name, ledger_id in sorted(candidates):
        preview = client.preview(ledger_id, period)
        if int(preview["count"].sum()) == 0:
            continue
        _say(progress, f"Generating {period.label} on {name} ({ledger_id}): the preview counts "
                       f"{_counts_per_ledger(preview, ledger_id, name)}.")
        client.generate(ledger_id, period).wait(progress=progress)
        generated.append(ledger_id)
    return generated


def _counts_per_ledger(preview: Any, ledger_id: str, name: str) -> str:
    """A preview's counts, ledger by ledger, the generated ledger first: "3 batches on Net Carbon Removal, 3 on
    Biochar Produced (made by the same model)" (a total over ledgers would read as that many on one ledger)."""
    own = preview[preview["ledger_id"].astype(str) == str(ledger_id)]
    others = preview[(preview["ledger_id"].astype(str) != str(ledger_id)) & (preview["count"] > 0)]
    parts = [f"{_plural(int(own['count'].sum()), 'batch')} on {_one_line(name, 200)}"]
    for row in others.itertuples():
        shown = row.ledger_name if isinstance(row.ledger_name, str) and row.ledger_name else row.ledger_id
        parts.append(f"{int(row.count)} on {_one_line(str(shown), 200)}")
    return ", ".join(parts) + (" (made by the same model)" if len(parts) > 1 else "")


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
