"""Snapshots: what a report read from the API, kept beside it, so that it renders again with no API at all.

The layer sits at the HTTP client: the report kernel's cells connect through ``connect()`` (the template calls
``reports.connect``), which is ``mangrove_nb.connect()`` with a ``ReadingHttpClient`` (it remembers every answer
read, for ``read_fingerprint``: the report's data fingerprint hashes every answer the report read, keyed by its
request) unless ``render_report`` set ``MANGROVE_NB_REPORT_SNAPSHOT`` in the kernel's environment. Then the
client's ``HttpClient`` is one of these (which remember what they read too):

- ``RecordingHttpClient``: every safe call (GETs and the read-only preview) is answered from a read cache shared by
  the reports of one command, else sent as usual and its parsed answer kept there; the key of every answer the
  kernel read is logged. A quarter's data read once serves the next quarter's "previous quarter" and the one a
  year later. Nothing that writes, and no task's status, is ever cached.
- ``ReplayingHttpClient``: answers from a snapshot and sends nothing at all (no token is needed; the base URL is
  never contacted). A request the snapshot does not hold is a ``ReportError`` naming it (and logged, so that the
  run fails even where a caller would have swallowed the error); a write is refused.

The report's sections run unchanged on either; a replayed report's provenance says so (``replayed_from``:
"replayed from the snapshot taken at <UTC time> (<folder name>)"). A snapshot is a folder ``<stem>.snapshot/``
beside the report:

- ``responses.jsonl``: JSON lines, one per API answer the report read, keyed by method, path, query (and body,
  for the read-only preview POST): ``{"method", "path", "query": [[name, value], ...], "body", "response"}``,
  sorted by key. The answers are as the client parsed them, after it removed any echo of the token;
- ``manifest.json``: the format, the period, the ledgers, the project, the parameters injected, the API base URL,
  the mangrove_nb version, when it was taken (UTC) and the data fingerprint the report computed (with
  ``fingerprint_format`` when it is the fingerprint of every answer in ``responses.jsonl``), with the responses'
  count and SHA-256. Never the token.

The folder is written whole or not at all (built beside it, then renamed into place; a symlink there is replaced,
never followed). Reading one checks the format, the checksum and every line, and ``check_snapshot`` refuses a
snapshot of another period, other ledgers, another project or another API than the one asked for.

What the checks prove, and do not: the checksum detects damage (a file cut or changed by accident), and the
fingerprint that a replayed report must reproduce detects answers that differ from those the report was rendered
from. Neither is a signature: whoever can edit the folder can recompute both (the package computes them), so a
snapshot shows what was read only as far as the folder can be trusted.

Its rooms, every name importable from here as before: ``_recording`` (the key of an answer, the clients that
remember what they read, the data fingerprint, the read cache: ``RequestKey``, ``ReadCache``, ``ReadingHttpClient``,
``RecordingHttpClient``, ``read_fingerprint``), ``_snapshot_files`` (the folder: its format, ``Snapshot``,
``load_snapshot``, ``check_snapshot``, ``manifest``, ``responses_text``, ``write_snapshot``) and ``_replaying``
(``ReplayingHttpClient``, the kernel's ``connect`` and ``Plan``, ``replayed_from``), each importing only the ones
before it. Nothing is defined here: a test that replaces a name replaces it in the module that calls it.
"""

from __future__ import annotations

from ._recording import _NEVER_CACHED as _NEVER_CACHED
from ._recording import FINGERPRINT_FORMAT as FINGERPRINT_FORMAT
from ._recording import ReadCache as ReadCache
from ._recording import ReadingHttpClient as ReadingHttpClient
from ._recording import RecordingHttpClient as RecordingHttpClient
from ._recording import RequestKey as RequestKey
from ._recording import _canonical_json as _canonical_json
from ._recording import read_digest as read_digest
from ._recording import read_fingerprint as read_fingerprint
from ._recording import request_key as request_key
from ._replaying import _REPLAY_TOKEN_PREFIX as _REPLAY_TOKEN_PREFIX
from ._replaying import Plan as Plan
from ._replaying import ReplayingHttpClient as ReplayingHttpClient
from ._replaying import _with_http as _with_http
from ._replaying import connect as connect
from ._replaying import missing_answer as missing_answer
from ._replaying import other_version as other_version
from ._replaying import replay_description as replay_description
from ._replaying import replay_token as replay_token
from ._replaying import replayed_from as replayed_from
from ._replaying import replaying_client as replaying_client
from ._snapshot_files import _MANIFEST_LIMIT as _MANIFEST_LIMIT
from ._snapshot_files import _RESPONSES_LIMIT as _RESPONSES_LIMIT
from ._snapshot_files import FORMAT as FORMAT
from ._snapshot_files import MANIFEST_NAME as MANIFEST_NAME
from ._snapshot_files import RESPONSES_NAME as RESPONSES_NAME
from ._snapshot_files import SUFFIX as SUFFIX
from ._snapshot_files import Snapshot as Snapshot
from ._snapshot_files import _check_manifest as _check_manifest
from ._snapshot_files import _pairs as _pairs
from ._snapshot_files import _parsed as _parsed
from ._snapshot_files import _read_regular as _read_regular
from ._snapshot_files import _Refused as _Refused
from ._snapshot_files import check_snapshot as check_snapshot
from ._snapshot_files import load_snapshot as load_snapshot
from ._snapshot_files import manifest as manifest
from ._snapshot_files import responses_text as responses_text
from ._snapshot_files import write_snapshot as write_snapshot
