"""The requests the emulator refuses, as typed errors: each is answered with the documented envelope.

``{"status": "error", "statusCode": <status>, "errors": [{"message": <message>}, …]}`` (``pipeline``), whoever
raised it: the parsing of a body or a query string (``bodies``, ``listing``), a route (``app``: a read-only
token), the backend (``backend``) or the rules of a generation (``generation``). The message names what was
wrong and what is accepted.

* ``BadRequest`` (400): the request itself cannot be read: a body that is not a JSON object, a bad query.
* ``Forbidden`` (403): a read-only token asked to write.
* ``NotFound`` (404): no ledger, batch, task, project or report with that id.
* ``Unprocessable`` (422): a readable request the API refuses: a field out of range, nothing to generate, a
  generation still running on the same ledgers, a batch a report cannot include, a report that cannot be
  submitted.

The emulator's other exceptions are not answers to a request: ``store.StoreError`` (a database file it cannot
use, at start) and ``model.ModelInputError``/``ModelValueError`` (a model run that fails its task or batch).
"""

from __future__ import annotations


class RequestError(Exception):
    """A request the API refuses: ``status`` and a ``message`` that says how to fix it.

    Further messages (``more``) go into the same envelope, one ``{"message": …}`` each, after the first: a
    report's refused batches, one per batch, or the unmet submission requirements after the documented summary.
    """

    status = 400

    def __init__(self, message: str, *more: str) -> None:
        super().__init__(message)
        self.message = message
        self.messages = (message, *more)


class BadRequest(RequestError):
    status = 400


class Forbidden(RequestError):
    status = 403


class NotFound(RequestError):
    status = 404


class Unprocessable(RequestError):
    status = 422
