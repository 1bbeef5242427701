"""Where the client's configuration comes from: token, base URL, timeouts, retry and polling bounds.

Precedence, for each value: an explicit argument, then the environment (``MANGROVE_API_TOKEN``,
``MANGROVE_API_URL``; only those two are read from it), then the named defaults below. When no token is
found, a hidden prompt asks for one if the session is interactive; otherwise a ``ConfigurationError`` says
how to provide one. Everything is validated when ``Settings`` is built, not at the first request.

This is the only module of mangrove_nb that reads ``os.environ``. The token lives in a ``Secret``, which
shows itself masked (``Secret('…7f3c')``) everywhere and refuses to be pickled.
"""

from __future__ import annotations

import dataclasses
import getpass as _getpass
import hmac
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from mangrove_nb._ipython import kernel
from mangrove_nb.errors import ConfigurationError, UnknownOptionError, register_secret

__all__ = [
    "BASE_URL_ENV_VAR",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BASE_URL",
    "DEFAULT_CALL_DEADLINE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT_PAGES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_POLL_MAX_INTERVAL",
    "DEFAULT_POLL_MIN_INTERVAL",
    "DEFAULT_RATE_LIMIT_MAX_WAIT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TASK_TIMEOUT",
    "PROJECT_ENV_VAR",
    "STATE_DIR_ENV_VAR",
    "TOKEN_ENV_VAR",
    "Secret",
    "Settings",
    "is_loopback_host",
]

TOKEN_ENV_VAR = "MANGROVE_API_TOKEN"  # noqa: S105 - a variable name, not a secret
BASE_URL_ENV_VAR = "MANGROVE_API_URL"
PROJECT_ENV_VAR = "MANGROVE_PROJECT_ID"
# Set to 1 by report runs: waits show no progress bar, so executed notebooks stay free of widgets.
QUIET_ENV_VAR = "MANGROVE_NB_QUIET"
# The local emulator makes its tokens with this prefix: such a token never goes to a non-loopback host.
EMULATOR_TOKEN_PREFIX = "mgv_emu_"  # noqa: S105 - a prefix, not a secret
# Where a session keeps what must outlive it (generation requests of unknown outcome, so that a restarted
# kernel does not send them again). Default: $XDG_STATE_HOME/mangrove_nb, else ~/.local/state/mangrove_nb.
STATE_DIR_ENV_VAR = "MANGROVE_NB_STATE_DIR"

#: The real API (v1 is canonical; one docs page shows v0.1, which is ignored).
DEFAULT_BASE_URL = "https://app.gomangrove.com/api/v1"
#: Seconds to establish a TCP + TLS connection. Short: a host that cannot connect in 5 s is not there.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds to wait for each read from the socket once connected.
DEFAULT_READ_TIMEOUT = 30.0
#: Overall seconds for one public call, retries, backoff and all pages included.
DEFAULT_CALL_DEADLINE = 120.0
#: Retries of a safe call (GET, generate_preview) after a transient failure; the first try is not counted.
DEFAULT_MAX_RETRIES = 4
#: First backoff delay in seconds; it doubles on each retry, with jitter, up to DEFAULT_BACKOFF_MAX.
DEFAULT_BACKOFF_INITIAL = 0.5
DEFAULT_BACKOFF_MAX = 8.0
#: On 429, wait for RateLimit-Reset when it is at most this many seconds away; otherwise raise.
DEFAULT_RATE_LIMIT_MAX_WAIT = 60.0
#: Items asked for per page; the emulator caps page_size at 100 and the real maximum is undocumented.
DEFAULT_PAGE_SIZE = 100
#: A list that needs more pages than this is treated as a runaway pagination and raises.
DEFAULT_MAX_PAGES = 1000
#: Pages fetched at once once total_pages is known.
DEFAULT_MAX_CONCURRENT_PAGES = 8
#: Task polling: never more often than once a second, on average no more than a fixed 2 s poll,
#: never less often than every 5 s (Mangrove suggests polling every 2-5 s).
DEFAULT_POLL_MIN_INTERVAL = 1.0
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_POLL_MAX_INTERVAL = 5.0
#: Seconds task.wait() waits by default before raising TaskTimeoutError (the task keeps running).
DEFAULT_TASK_TIMEOUT = 1800.0

_TOKEN_PROMPT = "Mangrove API token (input hidden): "  # noqa: S105 - a prompt
_HOW_TO_GIVE_A_TOKEN = (
    f"pass token=... to connect(), or set the {TOKEN_ENV_VAR} environment variable before starting Python "
    "or Jupyter (for example in a .env file loaded by your shell; never paste a token into a notebook cell "
    "that gets saved)."
)
# Masking shows the last 4 characters only when the token is long enough that they reveal little.
_MASK_MIN_LENGTH = 12
_SHOWN_CHARS = 4


class Secret:
    """A token that shows itself masked (``Secret('…7f3c')``); ``reveal()`` is the only way to the value.

    ``repr``, ``str`` and f-strings all give the masked form; the last 4 characters are shown only for
    tokens of at least 12 characters. Pickling raises, so a token cannot reach a file or another process
    by accident; copying returns the same object (it is immutable).
    """

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret needs a str, not {type(value).__name__}.")
        self.__value = value

    def reveal(self) -> str:
        """The raw token, for the one place that must send it (the Authorization header)."""
        return self.__value

    def masked(self) -> str:
        """``…7f3c`` for a long token, ``…`` for a short or empty one."""
        if len(self.__value) < _MASK_MIN_LENGTH:
            return "…"
        return "…" + self.__value[-_SHOWN_CHARS:]

    def __repr__(self) -> str:
        return f"Secret('{self.masked()}')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return format(repr(self), format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant-time comparison: equality must not leak the token through timing.
        return hmac.compare_digest(self.__value.encode(), other.__value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self.__value))

    def __len__(self) -> int:
        return len(self.__value)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "A mangrove_nb Secret (the API token) cannot be pickled; pass the token again in the other "
            f"process, e.g. through {TOKEN_ENV_VAR}."
        )

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


@dataclass(frozen=True)
class Settings:
    """Everything the client needs to talk to the API, validated. Build it with ``Settings.resolve()``.

    ``repr`` shows the token masked. Settings cannot be pickled (the token refuses to be).
    """

    token: Secret
    base_url: str = DEFAULT_BASE_URL
    allow_http: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    call_deadline: float = DEFAULT_CALL_DEADLINE
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX
    rate_limit_max_wait: float = DEFAULT_RATE_LIMIT_MAX_WAIT
    page_size: int = DEFAULT_PAGE_SIZE
    max_pages: int = DEFAULT_MAX_PAGES
    max_concurrent_pages: int = DEFAULT_MAX_CONCURRENT_PAGES
    poll_min_interval: float = DEFAULT_POLL_MIN_INTERVAL
    poll_interval: float = DEFAULT_POLL_INTERVAL
    poll_max_interval: float = DEFAULT_POLL_MAX_INTERVAL
    task_timeout: float = DEFAULT_TASK_TIMEOUT
    # Whether waits show progress (a widget bar in a notebook, a text line on a terminal).
    show_progress: bool = True
    # The session's project (events, reports, client.project()); None when not given.
    project_id: str | None = None
    # Where unknown generation outcomes are kept across sessions (see STATE_DIR_ENV_VAR); None keeps them in
    # this process only.
    state_dir: str | None = None
    # Where the base URL came from, so an error can point at the right place to fix it.
    base_url_source: str = field(default="the base_url argument", compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.token, str):
            object.__setattr__(self, "token", Secret(self.token.strip()))
        if not isinstance(self.token, Secret) or not len(self.token):
            raise ConfigurationError(f"The API token is empty; {_HOW_TO_GIVE_A_TOKEN}")
        # Registered before it is checked: from here on, no error message can quote it.
        register_secret(self.token.reveal())
        _check_token(self.token)
        url = _validated_base_url(self.base_url, allow_http=self.allow_http, source=self.base_url_source)
        object.__setattr__(self, "base_url", url)
        if self.project_id is not None:
            if isinstance(self.project_id, bool) or not isinstance(self.project_id, int | str) or not str(
                    self.project_id).strip():
                raise ConfigurationError(f"project_id must be a project id such as 123, not {self.project_id!r}.")
            object.__setattr__(self, "project_id", str(self.project_id).strip())
        self._check_numbers()

    @classmethod
    def resolve(
        cls,
        token: str | Secret | None = None,
        base_url: str | None = None,
        *,
        allow_http: bool = False,
        environ: Mapping[str, str] | None = None,
        interactive: bool | None = None,
        getpass: Callable[[str], str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        call_deadline: float | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build validated settings from arguments, then the environment, then the defaults.

        - ``token``: argument, else ``MANGROVE_API_TOKEN``, else a hidden prompt when ``interactive``
          (default: a terminal, or a Jupyter kernel that accepts input), else ``ConfigurationError``.
          Surrounding whitespace is stripped; an empty value counts as not given.
        - ``base_url``: argument, else ``MANGROVE_API_URL``, else ``DEFAULT_BASE_URL``. It must be https,
          except for loopback hosts (127.0.0.0/8, ::1, localhost) or with ``allow_http=True``.
        - ``environ`` replaces ``os.environ`` (tests); ``getpass`` replaces ``getpass.getpass``.
        - ``overrides``: any other ``Settings`` field by name (``page_size=50``, ``max_retries=0``...).
        """
        # Raw tokens are wrapped first and their names deleted: a traceback shown with its locals (IPython's
        # verbose mode, rich, error trackers) must never hold the token in clear, whatever fails below.
        secret = _as_secret(token)
        env_token, env_url, env_quiet, env_project = _read_environment(environ)
        state_dir = _state_dir(os.environ if environ is None else environ)
        del token, environ
        settable = {f.name for f in dataclasses.fields(cls)} - {"base_url_source"}
        unknown = sorted(set(overrides) - settable)
        if unknown:
            raise UnknownOptionError(
                f"Settings.resolve() got unknown option(s) {', '.join(unknown)}; "
                f"valid ones are {', '.join(sorted(settable - {'token', 'base_url'}))}."
            )
        # Options and the URL are checked before any prompt, so nobody types a token for a call that then fails.
        if base_url is not None:
            url, source = base_url, "the base_url argument"
        elif env_url is not None:
            url, source = env_url, BASE_URL_ENV_VAR
        else:
            url, source = DEFAULT_BASE_URL, "the default"
        url = _validated_base_url(url, allow_http=allow_http, source=source)
        if secret is None:
            secret = env_token
        if secret is None:
            secret = _prompt_for_token(interactive, getpass)
        if secret.reveal().startswith(EMULATOR_TOKEN_PREFIX) and not is_loopback_host(urlsplit(url).hostname or ""):
            raise ConfigurationError(
                f"The token is a local emulator's (it starts with {EMULATOR_TOKEN_PREFIX}) but the base URL from "
                f"{source} is {url}; it would be sent there for nothing. Set {BASE_URL_ENV_VAR} to the URL the "
                "emulator printed (http://127.0.0.1:PORT/api/v1), or use your Mangrove API token.")
        timeouts = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "call_deadline": call_deadline,
        }
        given: dict[str, Any] = {name: value for name, value in timeouts.items() if value is not None}
        if env_quiet and "show_progress" not in overrides:
            given["show_progress"] = False
        if overrides.get("project_id") is None and env_project is not None:
            overrides["project_id"] = env_project
        if "state_dir" not in overrides:
            overrides["state_dir"] = state_dir
        return cls(
            token=secret,
            base_url=url,
            allow_http=allow_http,
            base_url_source=source,
            **given,
            **overrides,
        )

    def _check_numbers(self) -> None:
        positive = (
            "connect_timeout", "read_timeout", "call_deadline", "backoff_initial", "backoff_max",
            "poll_min_interval", "poll_interval", "poll_max_interval", "task_timeout",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}.")
        for name in ("page_size", "max_pages", "max_concurrent_pages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}.")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"max_retries must be a whole number of at least 0, not {retries!r}.")
        if isinstance(self.rate_limit_max_wait, bool) or not self.rate_limit_max_wait >= 0:
            raise ConfigurationError(
                f"rate_limit_max_wait must be 0 or more seconds, not {self.rate_limit_max_wait!r}."
            )
        if self.backoff_initial > self.backoff_max:
            raise ConfigurationError("backoff_initial must not be larger than backoff_max.")
        if not self.poll_min_interval <= self.poll_interval <= self.poll_max_interval:
            raise ConfigurationError(
                "Poll intervals must satisfy poll_min_interval <= poll_interval <= poll_max_interval."
            )


def _read_environment(environ: Mapping[str, str] | None) -> tuple[Secret | None, str | None, bool, str | None]:
    """The token (already wrapped), the base URL, the quiet flag and the project id from the environment.

    Empty values count as unset.
    """
    env = os.environ if environ is None else environ
    url = (env.get(BASE_URL_ENV_VAR) or "").strip() or None
    project = (env.get(PROJECT_ENV_VAR) or "").strip() or None
    return _as_secret(env.get(TOKEN_ENV_VAR)), url, env.get(QUIET_ENV_VAR, "").strip() == "1", project


def _state_dir(env: Mapping[str, str]) -> str:
    chosen = (env.get(STATE_DIR_ENV_VAR) or "").strip()
    if chosen:
        return chosen
    base = (env.get("XDG_STATE_HOME") or "").strip() or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mangrove_nb")


def _as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value if value is None or len(value) else None
    if not isinstance(value, str):
        raise ConfigurationError(f"The API token must be a str, not {type(value).__name__}.")
    stripped = value.strip()
    return Secret(stripped) if stripped else None


def _check_token(token: Secret) -> None:
    """``ConfigurationError`` for a token that cannot be an API token; the message never quotes it.

    Tokens are printable ASCII without spaces. A line break inside (a token copied across two lines), a
    zero-width space or a typographic quote (pasted from a document) would otherwise fail deep inside the
    HTTP library, with the token in the exception.
    """
    for position, char in enumerate(token.reveal(), start=1):
        if "!" <= char <= "~":
            continue
        if char in "\r\n":
            what = "a line break"
        elif char == " ":
            what = "a space"
        elif char.isspace() or not char.isprintable():
            what = f"an invisible character ({_char_name(char)})"
        else:
            what = f"the character {_char_name(char)} (not plain ASCII)"
        # Raised without a context: nothing in the chain may hold the token.
        raise ConfigurationError(
            f"The API token contains {what} at position {position} of {len(token)}; API tokens are plain "
            "ASCII letters, digits and punctuation. Copy the token again in one piece (from Mangrove's API "
            f"settings, not from a document or chat that may rewrap or retype it); {_HOW_TO_GIVE_A_TOKEN}"
        ) from None


def _char_name(char: str) -> str:
    import unicodedata

    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"


def _prompt_for_token(interactive: bool | None, getpass: Callable[[str], str] | None) -> Secret:
    if interactive is None:
        interactive = _session_is_interactive()
    if not interactive:
        raise ConfigurationError(f"No Mangrove API token was given. To provide one, {_HOW_TO_GIVE_A_TOKEN}")
    ask = getpass or _getpass.getpass
    try:
        secret = _as_secret(ask(_TOKEN_PROMPT))
    except Exception as exc:  # EOFError, OSError, IPython's StdinNotImplementedError under papermill...
        # Not chained: the prompt machinery's exception adds nothing the user can act on.
        raise ConfigurationError(
            f"No Mangrove API token was given and the prompt for one failed ({type(exc).__name__}). "
            f"To provide one, {_HOW_TO_GIVE_A_TOKEN}"
        ) from None
    if secret is None:
        raise ConfigurationError(
            f"The API token entered at the prompt was empty. To provide one, {_HOW_TO_GIVE_A_TOKEN}"
        )
    return secret


def _session_is_interactive() -> bool:
    """A terminal, or a Jupyter kernel whose front end accepts input (papermill/nbclient runs do not)."""
    running = kernel()
    if running is not None:
        return bool(getattr(running, "_allow_stdin", False))
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except ValueError:  # stdin closed
        return False


def _validated_base_url(url: str, *, allow_http: bool, source: str) -> str:
    """The base URL without trailing slashes, or ``ConfigurationError`` naming what is wrong and where."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"The base URL from {source} is empty; give e.g. {DEFAULT_BASE_URL}.")
    cleaned = url.strip().rstrip("/")
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError:
        raise ConfigurationError(
            f"The base URL from {source} ({cleaned!r}) is not a valid URL; give e.g. {DEFAULT_BASE_URL}."
        ) from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(
            f"The base URL from {source} ({cleaned!r}) must start with https:// (or http:// for a loopback host "
            f"such as the emulator's 127.0.0.1) and name a host, e.g. {DEFAULT_BASE_URL}."
        )
    if parts.username is not None or parts.password is not None:
        # Not echoed back: the user:password part is a credential.
        raise ConfigurationError(
            f"The base URL from {source} contains a user name or password; remove it (the API token goes "
            f"in token= or {TOKEN_ENV_VAR})."
        )
    if parts.query or parts.fragment:
        # Not echoed whole: a query or fragment may hold a credential (…?api_token=…).
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        raise ConfigurationError(
            f"The base URL from {source} ({shown}?…) must not have a query or fragment (anything after ? or #); "
            f"give e.g. {DEFAULT_BASE_URL}."
        )
    if parts.scheme == "http" and not (allow_http or is_loopback_host(host)):
        raise ConfigurationError(
            f"The base URL from {source} ({cleaned!r}) uses plain http://, which would send your API token "
            "unencrypted. Use https://, or pass allow_http=True if you really mean it (loopback hosts such "
            "as 127.0.0.1 and localhost are always allowed)."
        )
    return cleaned


def is_loopback_host(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Set by mangrove_nb.reports in a report kernel's environment (never by users): whether that kernel's client
# records its reads through the report's read cache or replays them from a snapshot. Its value is the reports
# package's business; it is read here because this module is the one reader of os.environ.
REPORT_SNAPSHOT_ENV_VAR = "MANGROVE_NB_REPORT_SNAPSHOT"


# The Chromium a PDF report is printed with (reports.pdf); read here for the same reason.
CHROMIUM_ENV_VAR = "MANGROVE_NB_CHROMIUM"


def chromium_setting(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(MANGROVE_NB_CHROMIUM, PATH)`` from the environment (each None when unset or empty)."""
    env = os.environ if environ is None else environ
    return (env.get(CHROMIUM_ENV_VAR) or "").strip() or None, env.get("PATH") or None


def report_snapshot_setting(environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``MANGROVE_NB_REPORT_SNAPSHOT``, or None when it is unset or empty."""
    env = os.environ if environ is None else environ
    return (env.get(REPORT_SNAPSHOT_ENV_VAR) or "").strip() or None
