"""A snapshot's folder on disk: its format (``FORMAT``, ``SUFFIX``, ``MANIFEST_NAME``, ``RESPONSES_NAME``), reading
it checked (``load_snapshot`` into a ``Snapshot``; ``check_snapshot`` against the period, ledgers, project and API
asked for) and writing it (``manifest``, ``responses_text``, ``write_snapshot``).

Reading checks the format, the manifest's fields and their types, every record, the responses' SHA-256 and, when the
manifest says its fingerprint covers every answer, that fingerprint; both files must be regular files of a bounded
size, never read through a symlink. Anything else is a one-line ``ValidationError`` (``argument="from_snapshot"``).
Writing builds the folder beside its place and renames it there, whole or not at all, with the token scrubbed from
every file; a failure is a one-line ``ReportError``. The checksum and the fingerprint detect damage and edits, and
are no signature. ``snapshot`` is the public face (see its docstring for the whole layer).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mangrove_nb.errors import ReportError, ValidationError

from ._recording import FINGERPRINT_FORMAT, RequestKey, _canonical_json, read_digest
from ._text import _one_line
from .files import _NOFOLLOW, _os_reason

if TYPE_CHECKING:
    from mangrove_nb import Period

FORMAT = "mangrove_nb.snapshot/1"
SUFFIX = ".snapshot"
MANIFEST_NAME = "manifest.json"
RESPONSES_NAME = "responses.jsonl"
_MANIFEST_LIMIT = 1 << 20
_RESPONSES_LIMIT = 1 << 30  # what one report reads is a few MiB; a GiB is no snapshot


# --- a snapshot read --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read from its folder: the manifest, and the answers by key (``RequestKey.canonical``)."""

    path: Path
    manifest: Mapping[str, Any]
    answers: Mapping[str, str] = field(repr=False)  # the answer's JSON text: parsed afresh at every read

    @property
    def period(self) -> str:
        return str(self.manifest["period"])

    @property
    def base_url(self) -> str:
        return str(self.manifest["base_url"])

    @property
    def parameters(self) -> Mapping[str, Any]:
        return dict(self.manifest.get("parameters") or {})

    def answer(self, key: RequestKey) -> tuple[bool, Any]:
        text = self.answers.get(key.canonical)
        return (False, None) if text is None else (True, json.loads(text))


# --- reading a snapshot ------------------------------------------------------------------------------------------


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """The snapshot in the folder ``path``, checked: its format, the manifest's fields and their types, every
    record, the responses' SHA-256 against the manifest's, and (for a snapshot whose manifest says its fingerprint
    covers every answer: ``fingerprint_format``) that its answers give the fingerprint it records. Both files must
    be regular files (never read through a symlink, never a FIFO or a device) of a bounded size. Anything else is
    a one-line ``ValidationError`` (``argument="from_snapshot"``).

    The checksum detects damage, the fingerprint answers that differ from those the report was rendered from;
    neither is a signature (whoever can edit the folder can recompute both)."""
    folder = Path(path)
    problem = None
    manifest: Any = None
    answers: dict[str, str] = {}
    try:
        if not folder.is_dir():
            raise _Refused(f"{folder} is not a snapshot folder (a '<report>{SUFFIX}' folder that mangrove-nb report "
                           "--snapshot writes)")
        raw = _read_regular(folder / MANIFEST_NAME, _MANIFEST_LIMIT, "a snapshot's manifest")
        manifest = _parsed(raw.decode("utf-8"), folder / MANIFEST_NAME)
        _check_manifest(manifest, folder / MANIFEST_NAME)
        data = _read_regular(folder / RESPONSES_NAME, _RESPONSES_LIMIT, "a snapshot's responses")
        if hashlib.sha256(data).hexdigest() != manifest["responses"].get("sha256"):
            raise _Refused(f"{folder / RESPONSES_NAME} does not match its manifest's checksum (changed or cut "
                           "since the snapshot was taken)")
        pairs: list[tuple[str, str]] = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                record = _parsed(line, folder / RESPONSES_NAME)
                key = RequestKey.of_record(record)
            except (_Refused, ValueError, TypeError):
                raise _Refused(f"line {number} of {folder / RESPONSES_NAME} is not a snapshot record") from None
            answers[key.canonical] = json.dumps(record["response"])
            pairs.append((key.canonical, _canonical_json(record["response"])))
        kind = manifest.get("fingerprint_format")
        if kind is not None and kind != FINGERPRINT_FORMAT:
            version = _one_line(str(manifest.get("mangrove_nb_version")), 40)
            raise _Refused(f"{folder.name}'s fingerprint is of a kind this mangrove_nb does not compute "
                           f"({_one_line(str(kind), 60)}); it was taken with mangrove_nb {version}: render it with "
                           "that version")
        if kind is not None and read_digest(pairs) != manifest["fingerprint"]:
            raise _Refused(f"the answers in {folder / RESPONSES_NAME} do not give the data fingerprint its manifest "
                           "records: the snapshot was edited or damaged since it was taken")
    except _Refused as exc:
        problem = str(exc)
    except FileNotFoundError as exc:
        problem = f"{folder} is not a whole snapshot: {Path(str(exc.filename)).name} is missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else "not valid UTF-8 JSON"
        problem = f"cannot read the snapshot {folder} ({reason})"
    if problem is None:
        return Snapshot(folder, manifest, answers)
    raise ValidationError(_one_line(f"{problem}; give --from-snapshot (from_snapshot=) the folder "
                                    f"'<report>{SUFFIX}' written by mangrove-nb report --snapshot."),
                          argument="from_snapshot")


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes: a symlink (to /dev/zero, say), a FIFO (which
    would block), a device or a folder is refused; at most ``limit + 1`` bytes are ever read."""
    try:
        # Non-blocking: opening a FIFO would otherwise wait for a writer. No symlink is followed.
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise _Refused(f"{path} is a symbolic link; a snapshot's files are regular files") from None
        raise
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _Refused(f"{path} is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"{path} is too large to be {what} (more than {limit >> 20} MiB)")
    return data


def _parsed(text: str, path: Path) -> Any:
    """``json.loads(text)``; JSON nested too deeply to parse is refused (``_Refused``), like any other bad JSON
    (``ValueError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _Refused(f"{path} is not a snapshot file (JSON nested too deeply)") from None


def _check_manifest(manifest: Any, path: Path) -> None:
    """The manifest's fields a replay uses, with their types; ``_Refused`` naming the first that is not."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise _Refused(f"{path} is not a {FORMAT} manifest (format {_one_line(repr(found), 60)})")
    for name in ("period", "base_url", "fingerprint", "responses"):
        if name not in manifest:
            raise _Refused(f"{path} has no '{name}'")
    parameters = manifest.get("parameters")
    given = parameters if isinstance(parameters, dict) else {}
    ledgers, project = given.get("ledgers"), given.get("project")
    checks = (
        ("period", isinstance(manifest["period"], str) and re.fullmatch(r"\d{4}(Q[1-4])?", manifest["period"])),
        ("base_url", isinstance(manifest["base_url"], str)),
        ("fingerprint", isinstance(manifest["fingerprint"], str)),
        ("responses", isinstance(manifest["responses"], dict)),
        ("parameters", parameters is None or isinstance(parameters, dict)),
        ("parameters.ledgers", ledgers is None or (isinstance(ledgers, list) and all(isinstance(i, str)
                                                                                      for i in ledgers))),
        ("parameters.project", project is None or (isinstance(project, str | int) and not isinstance(project, bool))),
        ("parameters.base_url", given.get("base_url") is None or isinstance(given.get("base_url"), str)),
        ("created_at", manifest.get("created_at") is None or isinstance(manifest.get("created_at"), str)),
        ("mangrove_nb_version", manifest.get("mangrove_nb_version") is None
         or isinstance(manifest.get("mangrove_nb_version"), str)),
    )
    wrong = next((name for name, ok in checks if not ok), None)
    if wrong is not None:
        value: Any = manifest
        for part in wrong.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        raise _Refused(f"{path} has a '{wrong}' that is not what mangrove-nb report writes "
                       f"({_one_line(json.dumps(value)[:80], 80)})")


class _Refused(Exception):
    pass


def check_snapshot(snapshot: Snapshot, *, period: Period | None, ledgers: Sequence[str] | None,
                   project: str | None, base_url: str | None) -> None:
    """Refuse (``ValidationError``, one line) a snapshot of another period, other ledgers, another project or
    another API than the ones given (None: whatever the snapshot holds)."""
    taken = snapshot.parameters
    name = snapshot.path.name
    if period is not None and period.label != snapshot.period:
        raise ValidationError(f"The snapshot {name} is of {snapshot.period}, not {period.label}: give the snapshot "
                              f"of {period.label}, or leave --quarter/--year out to render {snapshot.period} again.",
                              argument="from_snapshot")
    if ledgers is not None and [str(i) for i in ledgers] != list(taken.get("ledgers") or []):
        shown = ", ".join(taken.get("ledgers") or []) or "every ledger with a model"
        raise ValidationError(f"The snapshot {name} is of {shown}, not the ledgers given: leave --ledger out to "
                              "render what it holds.", argument="from_snapshot")
    if project is not None and str(project) != str(taken.get("project")):
        of = f"project {taken['project']}" if taken.get("project") is not None else "no project"
        raise ValidationError(f"The snapshot {name} is of {of}, not {project}: leave --project out to render what "
                              "it holds.", argument="from_snapshot")
    if base_url is not None and base_url.rstrip("/") != snapshot.base_url:
        raise ValidationError(f"The snapshot {name} was taken from {snapshot.base_url}, not {base_url}: leave the "
                              "base URL out to render what it holds.", argument="from_snapshot")


# --- writing a snapshot -------------------------------------------------------------------------------------------


def manifest(*, period: Period, parameters: Mapping[str, Any], facts: Mapping[str, Any], base_url: str,
             version: str, records: Sequence[Mapping[str, Any]], responses: bytes,
             created_at: datetime | None = None) -> dict[str, Any]:
    """The manifest of a snapshot: what it is of, where from, when, and the fingerprint the report computed."""
    moment = (created_at or datetime.now(UTC)).astimezone(UTC)
    # The report's fingerprint is of every answer it read (the template's fingerprint(client)) when the answers kept
    # give it: then a replay checks them against it before it starts (``load_snapshot``). An edited template's own
    # fingerprint is only compared with the replayed report's.
    covers = facts.get("fingerprint") == read_digest(_pairs(responses))
    return {
        "format": FORMAT,
        "period": period.label,
        "kind": period.kind,
        "ledgers": list(facts.get("ledgers") or []),
        "project": facts.get("project"),
        "parameters": dict(parameters),
        "base_url": base_url,
        "mangrove_nb_version": version,
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": facts.get("fingerprint"),
        **({"fingerprint_format": FINGERPRINT_FORMAT} if covers else {}),
        "responses": {"file": RESPONSES_NAME, "count": len(records),
                      "sha256": hashlib.sha256(responses).hexdigest()},
    }


def _pairs(responses: bytes) -> list[tuple[str, str]]:
    """``[request key, answer]`` of each line of ``responses.jsonl``, both canonical JSON (``read_digest``)."""
    pairs = []
    for line in responses.decode("utf-8").splitlines():
        record = json.loads(line)
        pairs.append((RequestKey.of_record(record).canonical, _canonical_json(record["response"])))
    return pairs


def responses_text(records: Iterable[Mapping[str, Any]]) -> bytes:
    """``responses.jsonl``: one record per line, keys sorted, ASCII."""
    return "".join(json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n" for record in records).encode("ascii")


def write_snapshot(folder: Path, files: Mapping[str, bytes], scrub: Callable[[str], str]) -> None:
    """Write ``files`` (name -> bytes) as the folder ``folder``, whole or not at all.

    The folder is built beside ``folder`` under a temporary name, each file synced, then renamed into place; what
    was at ``folder`` (an earlier snapshot, or a planted symlink, which is removed, never followed) goes only once
    the new folder is complete. ``scrub`` runs over every file's text first: the token never reaches a file.
    """
    temporary = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.tmp")
    old = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.old")
    problem = None
    try:
        temporary.mkdir(mode=0o755)
        for name, data in files.items():
            text = data.decode("utf-8")
            cleaned = scrub(text)
            descriptor = os.open(temporary / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(cleaned.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()  # a link goes, never its target
        elif folder.exists():
            os.replace(folder, old)
        try:
            os.replace(temporary, folder)
        except OSError:
            if old.exists() and not folder.exists():
                os.replace(old, folder)  # the earlier snapshot stays whole
            raise
    except OSError as exc:
        problem = f"Cannot write the snapshot {folder} ({_os_reason(exc)}); give --out (out_dir=) a folder you can " \
                  "write to."
    finally:
        for leftover in (temporary, old):
            if leftover.exists() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
    if problem is not None:
        raise ReportError(problem) from None
