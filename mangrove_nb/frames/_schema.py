"""The one place each frame's schema lives: its columns, in order, and their dtypes.

The dtypes are named explicitly (``datetime64[ns, UTC]`` and pandas' nullable ``string``, ``Int64``,
``Float64``, ``boolean``), so pandas 2.2 and 3.x give the same frames. The schemas are read-only mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_TEXT = "string"
_INT = "Int64"
_FLOAT = "Float64"
_BOOL = "boolean"
_TIME = "datetime64[ns, UTC]"

LEDGERS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _TEXT,
        "name": _TEXT,
        "unit": _TEXT,
        "system_ledger_type": _TEXT,
        "partition_type": _TEXT,
        "cadence": _TEXT,
        "model_id": _TEXT,
        "model_name": _TEXT,
        "has_model": _BOOL,  # NA when the payload has no latest_model key at all; False when it is null
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)

REQUIRED_INPUTS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _INT,  # the data point type id
        "name": _TEXT,
        "slug": _TEXT,
        "unit": _TEXT,
        "value_type": _TEXT,
        "category": _TEXT,
        "subcategory": _TEXT,
        "is_manual_select": _BOOL,
        "output_of_ledgers": _TEXT,
        "allocation_groups": _TEXT,
    }
)

PREVIEW_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "ledger_id": _TEXT,
        "ledger_name": _TEXT,
        "count": _INT,
    }
)

BATCHES_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _TEXT,
        "tracking_id": _TEXT,
        "start_time": _TIME,
        "end_time": _TIME,
        "state": _TEXT,
        "created_at": _TIME,
        "updated_at": _TIME,
        "output_name": _TEXT,
        "output_unit": _TEXT,
        "output_value": _FLOAT,
        "ledger_balance": _FLOAT,
        "ledger_id": _TEXT,
        # Filled by the analyst API from the ledgers it knows (listing items do not carry it).
        "ledger_name": _TEXT,
        "model_run_state": _TEXT,
        "model_run_error": _TEXT,
        "feedstock": _TEXT,
        # The batch's output data point (model_run.output_data_points[0].id): what a downstream ledger's
        # manual-select input names in data_point_ids.
        "output_data_point_id": _TEXT,
    }
)

#: What ``client.batches(..., details=True)`` adds, from each batch's ``GET /batches/{id}``.
DETAILS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        # The data point types the generation skipped (``skipped_input`` placeholders), names joined with ", ";
        # NA when none was skipped.
        "skipped_inputs": _TEXT,
        "skipped_input_ids": _TEXT,
        # The upstream batches whose output this batch read (manual-select inputs), ids joined with ", ".
        "upstream_batches": _TEXT,
    }
)

#: ``client.calculations()``: the LCA breakdown of each batch (``model_run.calculations``), one row each.
CALCULATIONS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "batch_id": _TEXT,
        "tracking_id": _TEXT,
        "ledger_id": _TEXT,
        "start_time": _TIME,
        "name": _TEXT,
        "value": _FLOAT,
        "unit": _TEXT,
        "ghg": _TEXT,
        "lca_role": _TEXT,
        "category": _TEXT,
        # The server's note, e.g. that a skipped input counted as zero.
        "note": _TEXT,
    }
)

EVENTS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "event_id": _TEXT,
        "event_slug": _TEXT,
        "event_type": _TEXT,
        "tracking_id": _TEXT,
        "start_time": _TIME,
        "end_time": _TIME,
        "data_point_id": _TEXT,
        "data_point_slug": _TEXT,
        "data_point_type": _TEXT,
        "value": _FLOAT,  # NA when the value is not a number (text, boolean)
        "value_text": _TEXT,  # every value as text: numbers as written, booleans as true/false
        "unit": _TEXT,
        "status": _TEXT,
    }
)
