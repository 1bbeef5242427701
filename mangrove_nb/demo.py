"""``make demo``: the main job on the local emulator.

``run_demo()`` starts an emulator, generates the quarter (default Q1 2025) where batches are missing, renders
its quarterly report (executed notebook + offline HTML, titled with the emulator's project) and prints the HTML's
path. ``walk()`` is the batch-generation cookbook for the quarter over plain HTTP, step by step, printing what
the API says (``mangrove-nb demo --walk --quarter 2025Q2``). Every failure is a ``MangroveError`` with a one-line
message (the command prints it as such).
"""

from __future__ import annotations

import time
from typing import Any

import requests

from .errors import MangroveError
from .reports import quarter_period

POLL_SECONDS = 0.5
TIMEOUT = (3.05, 30)


def _step(number: int, title: str) -> None:
    print(f"\n[{number}/6] {title}", flush=True)


def _call(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = session.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise MangroveError(f"{method} {url} failed: {type(exc).__name__}.") from None
    if response.status_code >= 400:
        raise MangroveError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
    try:
        return response.json()
    except ValueError:
        raise MangroveError(f"{method} {url} answered {response.status_code} without JSON.") from None


def walk(base_url: str, token: str, *, ledger_name: str = "Net Carbon Removal",
         quarter: str = "2025Q1") -> list[dict[str, Any]]:
    """The cookbook's six steps for ``quarter`` against ``base_url``; returns the batches the generation made."""
    span = quarter_period(quarter)
    body = span.api_params()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"

        _step(1, "GET /ledgers: find the ledger (generation needs a linked model)")
        ledgers = _call(session, "GET", f"{base_url}/ledgers")["data"]
        for item in ledgers:
            model = item["latest_model"]["name"] if item["latest_model"] else "no model: cannot generate"
            print(f"  {item['id']}  {item['name']:<26} {item['unit'] or '':<6} {model}")
        ledger = next((item for item in ledgers if item["name"] == ledger_name), None)
        if ledger is None:
            raise MangroveError(f"The API lists no ledger called {ledger_name!r}.")
        ledger_id = ledger["id"]

        _step(2, f"GET /ledgers/{ledger_id}/required_inputs")
        for item in _call(session, "GET", f"{base_url}/ledgers/{ledger_id}/required_inputs")["data"]:
            manual = "  (manual select)" if item["is_manual_select"] else ""
            print(f"  {item['id']:>3}  {item['name']:<32} {item['unit'] or '-'}{manual}")

        _step(3, f"POST /ledgers/{ledger_id}/generate_preview for {span}")
        preview = _call(session, "POST", f"{base_url}/ledgers/{ledger_id}/generate_preview", json=body)["data"]
        for item in preview:
            print(f"  {item['name']:<26} {item['count']} batch(es)")
        expected = next((item["count"] for item in preview if item["id"] == ledger_id), 0)
        if expected == 0:
            print(f"  Nothing to generate: {span.label} already has batches on this ledger, or no data.")
            return []

        _step(4, f"POST /ledgers/{ledger_id}/batch_generations (asynchronous)")
        task = _call(session, "POST", f"{base_url}/ledgers/{ledger_id}/batch_generations", json=body)
        print(f"  202 Accepted: task {task['id']} is {task['state']}")

        _step(5, f"GET /async_tasks/{task['id']} until complete or failed")
        shown = None
        while task["state"] not in ("complete", "failed"):
            time.sleep(POLL_SECONDS)
            task = _call(session, "GET", f"{base_url}/async_tasks/{task['id']}")
            line = f"  {task['state']:<8} {task['progress']:>3}%  {task.get('progress_description') or ''}"
            if line != shown:
                print(line, flush=True)
                shown = line
        if task["state"] == "failed":
            raise MangroveError(f"The generation of {span.label} failed on the server: {task['error_message']}")

        _step(6, f"GET /ledgers/{ledger_id}/batches?sort=-created_at: verify")
        batches = _call(session, "GET", f"{base_url}/ledgers/{ledger_id}/batches",
                        params={"sort": "-created_at", "page_size": expected})["data"]
        for item in sorted(batches, key=lambda b: b["start_time"]):
            output = item["primary_output"]
            print(f"  {item['id']}  {item['tracking_id']:<12} {item['start_time'][:10]}  "
                  f"{output['value']:>8.3f} {output['unit']}  {item['state']}")
        print(f"\n{len(batches)} batch(es) listed; the preview said {expected}.")
        return list(batches)


def run_demo(*, batch_seconds: float = 1.0, quarter: str = "2025Q1", out_dir: str = "reports",
             cookbook: bool = False) -> int:
    """``mangrove-nb demo``: the quarter is checked before the emulator starts."""
    from .emulator import Emulator
    from .emulator.seed import PROJECT_ID

    label = quarter_period(quarter).label
    with Emulator(batch_seconds=batch_seconds) as emulator:
        print(f"Mangrove emulator running on {emulator.url} (seeded demo data, in memory)", flush=True)
        if cookbook:
            walk(emulator.url, emulator.token, quarter=label)
            return 0
        from .reports import render_report

        paths = render_report(label, out_dir=out_dir, base_url=emulator.url, token=emulator.token,
                              project=PROJECT_ID, generate_missing=True)
    print(f"\nReport notebook: {paths.ipynb}")
    print(f"Report (open in a browser, works offline): {paths.html}")
    return 0
