"""Pure functions from the API's JSON to typed pandas DataFrames, and the one place each frame's schema lives.

Every frame has a fixed column order and real dtypes, the same when it is empty:
``datetime64[ns, UTC]`` timestamps, and pandas' nullable ``string``, ``Int64``, ``Float64`` and ``boolean``
(the dtypes are named explicitly, so pandas 2.2 and 3.x give the same frames).

Reading rules, the same for every frame:
- unknown extra fields are ignored; a missing or null optional field becomes NA;
- a missing required field, a non-object item, a wrongly typed value or an unreadable timestamp raises
  ``MalformedResponseError`` naming the field and the item's index;
- ledger, batch and model ids are opaque strings (an int id becomes its decimal text); data point type ids
  (``required_inputs.id``) are integers;
- timestamps without an offset are taken as UTC;
- numbers sent as numeric strings (``"33.5"``, as Rails sends decimals) are accepted;
- list fields whose item shape is undocumented (``output_of_ledgers``, ``allocation_groups``,
  ``feedstocks``) become one string: the items joined with ``", "``, each item shown as itself (text or
  number) or, for an object, as ``name (id)`` / ``name`` / ``id`` / compact JSON. An empty list gives ``""``
  (known to be empty); a missing field gives NA.

``attrs`` (provenance: base URL, ledger, period, fetched-at) is copied into ``df.attrs``; keys that look like
credentials are refused, because frames travel into notebooks, reports and pickles.

The package's rooms: ``_schema`` (every frame's columns and dtypes), ``_reading`` (the rules above: one item
read field by field, rows made into a frame), ``ledgers`` (ledgers, required inputs, preview, upstream
ledgers), ``batches`` (the careful and the fast batch readers; and the rules of partitions with two complete
batches and of a balance larger than the output, which the quarterly report and the registry plan share),
``details`` (what ``GET /batches/{id}`` adds:
skipped inputs, upstream points, calculations; and what a skipped input changed, the rule the quarterly report
and the registry plan share) and ``events``. Import from ``mangrove_nb.frames``.
"""

from __future__ import annotations

# The careful batch reader's pieces (`_batch_row`, `_finish_batches`, `_frame`, `_rows`) are re-exported for
# tests/test_frames.py, which compares the fast reader with them; they are not part of the API.
from ._reading import _frame as _frame
from ._reading import _rows as _rows
from ._reading import concat_frames, empty_frame
from ._schema import (
    BATCHES_SCHEMA,
    CALCULATIONS_SCHEMA,
    DETAILS_SCHEMA,
    EVENTS_SCHEMA,
    LEDGERS_SCHEMA,
    PREVIEW_SCHEMA,
    REQUIRED_INPUTS_SCHEMA,
)
from .batches import _batch_row as _batch_row
from .batches import _finish_batches as _finish_batches
from .batches import (
    balance_exceeds_output,
    batch_columns,
    batches_frame,
    batches_frame_of_columns,
    duplicate_partitions,
)
from .details import (
    calculation_rows,
    calculations_frame,
    detail_row,
    may_overstate,
    skipped_effect,
    skipped_effects,
    term_sign,
)
from .events import events_frame
from .ledgers import (
    can_generate,
    ledger_names,
    ledgers_frame,
    preview_frame,
    required_inputs_frame,
    upstream_ledger_ids,
    with_model,
)

__all__ = [
    "BATCHES_SCHEMA",
    "CALCULATIONS_SCHEMA",
    "DETAILS_SCHEMA",
    "EVENTS_SCHEMA",
    "LEDGERS_SCHEMA",
    "PREVIEW_SCHEMA",
    "REQUIRED_INPUTS_SCHEMA",
    "balance_exceeds_output",
    "batch_columns",
    "batches_frame",
    "batches_frame_of_columns",
    "calculation_rows",
    "calculations_frame",
    "can_generate",
    "concat_frames",
    "detail_row",
    "duplicate_partitions",
    "empty_frame",
    "events_frame",
    "ledger_names",
    "ledgers_frame",
    "may_overstate",
    "preview_frame",
    "required_inputs_frame",
    "skipped_effect",
    "skipped_effects",
    "term_sign",
    "upstream_ledger_ids",
    "with_model",
]
