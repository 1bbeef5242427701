"""API text on one line, safe to print (``mangrove_nb._text.one_line``), wherever it is shown: a report's name, a
ledger's, a tracking id and a registry's message carrying an ANSI colour, a bell, a right-to-left override, a
bidirectional isolate, a zero-width space and a line separator come out without any of them in the command's
output, ``plan.to_text()``, a ``TaskFailedError``'s message, the report's Registry section and the ReportForm's
drop-down labels; the token is redacted, even spelled with a format character inside it. ``printable`` (the
report's page, notebook and workbook) removes the same characters and keeps the lines. Both keep the format
characters legitimate text needs: the zero-width non-joiner of Persian, the joiner of emoji sequences, the soft
hyphen, the Arabic number signs, a subdivision flag's tags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import connect_to

import mangrove_nb as mnb
from mangrove_nb import reports
from mangrove_nb._secrets import register_secret
from mangrove_nb._text import one_line, printable
from mangrove_nb.errors import TaskFailedError
from mangrove_nb.periods import parse_period
from mangrove_nb.reports.sections import registry_status, registry_tables

NCR = "Net Carbon Removal"
REJECTED = "Rejected by registry (demo)"
# Each hostile piece: an escape that recolours, a bell, a C1 CSI that clears the screen, a right-to-left override,
# an isolate and its end, a zero-width space, a line and a paragraph separator, a BOM, a plain newline.
HOSTILE = "Q3\x1b[31m red\x07 \x9b2J \u202eLIAF\u2066x\u2069 z\u200bw \u2028l2\u2029l3 \ufeffend\n"
FORBIDDEN = set("\x1b\x07\x9b\u202e\u2066\u2069\u200b\u2028\u2029\ufeff\n\r")
SCRIPT = Path(sys.executable).with_name("mangrove-nb")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "mangrove_nb.cli"]


def clean(text: str) -> bool:
    return not FORBIDDEN & set(text)


def test_one_line_drops_escapes_controls_separators_and_format_characters() -> None:
    shown = one_line(HOSTILE)
    assert shown == "Q3 red LIAFx zw l2 l3 end"
    assert one_line("a\x1b]0;title\x07b") == "a 0;title b"  # an OSC's text stays visible, its control goes
    assert one_line("\x1b[2025-01 NCR") == "2025-01 NCR"  # an unfinished CSI takes nothing that follows
    assert one_line("ok 🌱 café — 1,5 t") == "ok 🌱 café — 1,5 t"
    assert one_line("abcdef", 4) == "abc…" and one_line(None) == "None"


# What hides or reorders what a reader sees: bidi embeddings, overrides, isolates and marks; zero-width space, word
# joiner, invisible operators, deprecated format characters, BOM; interlinear annotations; the language tag; tags
# outside a flag; C0 (but tab, LF, CR) and C1 controls, DEL; an unpaired surrogate.
HIDING = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
          "\u200f", "\u061c", "\u200b", "\u2060", "\u2062", "\u206e", "\ufeff", "\ufff9", "\ufffa", "\ufffb",
          "\U000e0001", "\U000e0041", "\U000e007f", "\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x85",
          "\x9f", "\ud800"]
# Legitimate text that needs a format character: Persian with a zero-width non-joiner, an emoji sequence with a
# joiner, a soft hyphen, an Arabic number sign before digits, Scotland's and Wales' subdivision flags (tags).
KEPT = ["می\u200cخواهم", "👩\u200d🔬", "Kohlenstoff\u00adbindung", "\u0600\u0661\u0662\u0663",
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f", "ok 🌱 café — 1,5 t"]


@pytest.mark.parametrize("character", HIDING, ids=lambda c: f"U+{ord(c):04X}")
def test_both_cleaners_remove_every_character_that_hides_or_reorders_text(character: str) -> None:
    assert printable(f"NCR-{character}2024") == "NCR-2024"
    assert one_line(f"NCR-{character}2024") in ("NCR-2024", "NCR- 2024")  # a control separates words: a space


@pytest.mark.parametrize("text", KEPT)
def test_both_cleaners_keep_the_format_characters_legitimate_text_needs(text: str) -> None:
    assert printable(text) == text and one_line(text) == text
    assert printable(f"{text}\u202e!") == f"{text}!"  # beside a removed one too


def test_tags_outside_a_subdivision_flag_go_a_hidden_text_with_them() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "send to evil")
    assert printable(f"Ledger A{hidden}") == "Ledger A" == one_line(f"Ledger A{hidden}\U000e007f")
    too_long = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "gbscotland") + "\U000e007f"
    assert printable(too_long) == "\U0001f3f4"  # a flag's code has 3 to 7 tag letters or digits
    assert printable("\U0001f3f4\U000e0047\U000e0042\U000e0053\U000e007f") == "\U0001f3f4"  # capitals are no code


def test_printable_keeps_lines_and_spacing_and_removes_escapes_whole() -> None:
    assert printable("Ledger\tA\r\nline 2\u2028p\u00a0t \x1b[1;31mred\x1b[0m \x9b2J") == \
        "Ledger\tA\r\nline 2\u2028p\u00a0t red "
    assert printable("a\x1b]0;title\x07b") == "a0;titleb"  # an OSC's text stays visible, its controls go
    assert printable("\x1b[2025-01 NCR") == "2025-01 NCR"  # an unfinished CSI takes nothing that follows
    assert printable(12.5) == "12.5"


def test_printable_redacts_a_token_that_a_removed_character_split() -> None:
    token = "mgv_live_Pp27dQ9wLx4nVa"
    register_secret(token)
    assert printable(f"id {token[:5]}\u202e{token[5:]}\n") == "id [redacted]\n"
    assert printable(f"id {token[:5]}\x1b[0m{token[5:]}") == "id [redacted]"


def test_one_line_redacts_a_token_even_when_a_format_character_splits_it() -> None:
    token = "mgv_live_Zq81kP0sTw3xYb"
    register_secret(token)
    assert one_line(f"echo {token[:6]}\u200b{token[6:]} and {token}") == "echo [redacted] and [redacted]"
    assert token not in one_line(f"\x1b[{token}")


@pytest.fixture
def hostile(emulator: Any) -> Iterator[tuple[mnb.Client, str]]:
    """The emulator with a hostile report name (the demo draft's), ledger name, tracking id and registry message."""
    with connect_to(emulator.url, emulator.token, project_id=123) as client:
        rid = str(client.reports().set_index("name").loc[REJECTED, "id"])
        client.http.update_report(rid, {"report": {"name": f"Demo {HOSTILE}"}})
        with emulator.store.transaction() as conn:
            conn.execute("UPDATE batches SET tracking_id = ? WHERE tracking_id = 'NCR-2024-07'", (f"NCR {HOSTILE}",))
            conn.execute("UPDATE ledgers SET name = ? WHERE name = ?", (f"{NCR} {HOSTILE}", NCR))
            conn.execute("UPDATE reports SET registry_rejection = ? WHERE id = ?", (f"No: {HOSTILE}", rid))
        yield client, rid


def test_a_plan_as_text_and_a_reports_repr_carry_none_of_it(hostile: tuple[mnb.Client, str]) -> None:
    client, rid = hostile
    plan = client.plan_report(rid, client.report(rid).batch_ids)
    text = plan.to_text()
    assert "Q3 red LIAFx zw l2 l3 end" in text and "NCR Q3 red" in text  # the name and the tracking id, cleaned
    assert clean(text.replace("\n", "")) and clean(repr(plan)) and clean(repr(client.report(rid)))


def test_the_registrys_refusal_is_a_task_failed_error_without_it(hostile: tuple[mnb.Client, str]) -> None:
    client, rid = hostile
    with pytest.raises(TaskFailedError) as refused:
        client.submit_report(rid).wait()
    assert "No: Q3 red LIAFx zw l2 l3 end" in str(refused.value) and clean(str(refused.value))
    generation = TaskFailedError(task_id=7, error_message=f"Missing input {HOSTILE}")  # a generation's, too
    assert "Missing input Q3 red LIAFx zw l2 l3 end" in str(generation) and clean(str(generation))


@pytest.mark.slow
def test_the_registry_command_prints_none_of_it(hostile: tuple[mnb.Client, str], emulator: Any,
                                                tmp_path: Path) -> None:
    _client, rid = hostile
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGROVE_") and "proxy" not in k.lower()}
    env.update(MANGROVE_API_URL=emulator.url, MANGROVE_API_TOKEN=emulator.token, MANGROVE_PROJECT_ID="123",
               MANGROVE_NB_STATE_DIR=str(tmp_path / "state"))
    result = subprocess.run([*COMMAND, "registry", "--quarter", "2024Q3", "--report", rid, "--submit", "--yes"],
                            capture_output=True, text=True, encoding="utf-8", timeout=120, env=env, check=False)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Q3 red LIAFx zw l2 l3 end" in result.stdout  # the plan's ledger and tracking id
    assert "No: Q3 red LIAFx zw l2 l3 end" in result.stderr  # the registry's refusal
    assert clean(result.stdout.replace("\n", "")) and clean(result.stderr.replace("\n", ""))
    assert emulator.token not in result.stdout + result.stderr


def test_the_report_registry_section_shows_none_of_it(hostile: tuple[mnb.Client, str]) -> None:
    client, _rid = hostile
    period = parse_period("2024Q3")
    selected = reports.select_ledgers(client.ledgers(), None)
    batches = client.batches(selected["id"].tolist(), period, details=True)
    found = registry_status(client, batches, selected, period)
    shown = "\n".join(part._repr_html_() for part in registry_tables(found, period))
    assert "Demo Q3 red LIAFx zw l2 l3 end" in shown and "NCR Q3 red LIAFx" in shown
    assert clean(shown.replace("\n", ""))
    for frame in (found.reports, found.placements, found.unallocated):
        assert all(clean(v) for column in frame.columns for v in frame[column].dropna() if isinstance(v, str))


def test_the_report_forms_drop_down_labels_plan_and_refusal_show_none_of_it(hostile: tuple[mnb.Client, str]) -> None:
    client, rid = hostile
    form = mnb.ReportForm(client, report=rid, period="2024Q3")
    labels = [label for label, _value in form.report_dropdown.options]
    assert any("Demo Q3 red LIAFx zw l2 l3 end" in label for label in labels)
    assert all(clean(label) for label in labels)
    form.plan()
    assert clean(form.plan_html.value.replace("\n", "")) and clean(form.status.value.replace("\n", ""))
    form.submit()
    form.confirm()
    with pytest.raises(TaskFailedError):
        form.wait(30)
    assert "No: Q3 red LIAFx zw l2 l3 end" in form.status.value  # the registry's refusal, cleaned
    assert clean(form.status.value.replace("\n", "")) and clean(form.static_html.replace("\n", ""))
