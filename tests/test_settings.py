"""Settings: precedence, https enforcement, validation, and a token that never shows unmasked."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import sys
import traceback
from pathlib import Path

import pytest

import mangrove_nb as mnb
from mangrove_nb import settings as settings_module
from mangrove_nb.errors import ConfigurationError
from mangrove_nb.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_READ_TIMEOUT,
    Secret,
    Settings,
)

TOKEN = "mgv_live_0123456789abcdef7f3c"
ENV_TOKEN = "mgv_env_token_from_environment_a1b2"


def resolve(**kwargs) -> Settings:
    """Settings.resolve with an empty environment and no prompt unless the test says otherwise."""
    kwargs.setdefault("environ", {})
    kwargs.setdefault("interactive", False)
    return Settings.resolve(**kwargs)


# --- the Secret -----------------------------------------------------------------------------------------


def test_secret_shows_only_the_last_four_characters() -> None:
    secret = Secret(TOKEN)
    assert repr(secret) == "Secret('…7f3c')"
    assert str(secret) == "Secret('…7f3c')"
    assert f"{secret}" == "Secret('…7f3c')"
    assert f"{secret!r}" == "Secret('…7f3c')"
    assert f"{secret:>20}" == "     Secret('…7f3c')"
    assert "{}".format(secret) == "Secret('…7f3c')"  # noqa: UP032 - str.format is what is being tested
    assert "%s %r" % (secret, secret) == "Secret('…7f3c') Secret('…7f3c')"  # noqa: UP031
    assert secret.reveal() == TOKEN


@pytest.mark.parametrize("short", ["", "abc", "12345678901"])
def test_short_tokens_are_fully_masked(short: str) -> None:
    assert repr(Secret(short)) == "Secret('…')"


def test_secret_refuses_to_be_pickled_and_the_error_does_not_leak_it() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError) as caught:
            pickle.dumps(Secret(TOKEN), protocol=protocol)
        assert TOKEN not in str(caught.value)


def test_secret_has_no_dict_and_copies_are_the_same_object() -> None:
    secret = Secret(TOKEN)
    assert not hasattr(secret, "__dict__")
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret


def test_secret_equality_compares_values() -> None:
    assert Secret(TOKEN) == Secret(TOKEN)
    assert Secret(TOKEN) != Secret(ENV_TOKEN)
    assert Secret(TOKEN) != TOKEN  # a Secret is never equal to the raw string
    assert len({Secret(TOKEN), Secret(TOKEN)}) == 1


def test_secret_needs_a_string() -> None:
    with pytest.raises(TypeError):
        Secret(1234)  # type: ignore[arg-type]


# --- the token never appears unmasked ---------------------------------------------------------------------


def test_settings_repr_and_str_show_the_masked_token_only() -> None:
    settings = resolve(token=TOKEN)
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert TOKEN not in text
        assert "Secret('…7f3c')" in text


def test_settings_cannot_be_pickled() -> None:
    with pytest.raises(TypeError) as caught:
        pickle.dumps(resolve(token=TOKEN))
    assert TOKEN not in str(caught.value)


def test_settings_deepcopy_keeps_the_token_working() -> None:
    settings = resolve(token=TOKEN)
    assert copy.deepcopy(settings).token.reveal() == TOKEN


@pytest.mark.parametrize("failure", [{"base_url": "http://example.com"}, {"connect_timeout": -1}, {"pagesize": 3}])
def test_no_traceback_local_in_settings_holds_the_raw_token(failure: dict) -> None:
    # A failure after the token was read must not leave it in any frame's locals, where "tracebacks with
    # locals" (IPython verbose mode, rich, error trackers) would print it.
    with pytest.raises((ConfigurationError, TypeError)) as caught:
        Settings.resolve(token=TOKEN, environ={"MANGROVE_API_TOKEN": ENV_TOKEN}, **failure)
    assert TOKEN not in str(caught.value)
    settings_file = settings_module.__file__
    tb = caught.value.__traceback__
    seen = 0
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename == settings_file:
            seen += 1
            for name, value in frame.f_locals.items():
                assert TOKEN not in repr(value), name
                assert ENV_TOKEN not in repr(value), name
        tb = tb.tb_next
    assert seen >= 1


def test_configuration_errors_never_contain_the_token() -> None:
    bad_calls = [
        {"token": TOKEN, "base_url": "ftp://example.com"},
        {"token": TOKEN, "connect_timeout": -1},
        {"token": TOKEN, "base_url": "https://u:p@example.com"},
    ]
    for kwargs in bad_calls:
        with pytest.raises(ConfigurationError) as caught:
            resolve(**kwargs)
        assert TOKEN not in str(caught.value)
        assert caught.value.__cause__ is None


# --- precedence -----------------------------------------------------------------------------------------


def test_argument_beats_environment() -> None:
    settings = resolve(
        token=TOKEN,
        base_url="https://staging.example.com/api/v1",
        environ={"MANGROVE_API_TOKEN": ENV_TOKEN, "MANGROVE_API_URL": "https://other.example.com/api/v1"},
    )
    assert settings.token.reveal() == TOKEN
    assert settings.base_url == "https://staging.example.com/api/v1"


def test_environment_beats_defaults() -> None:
    settings = resolve(
        environ={"MANGROVE_API_TOKEN": ENV_TOKEN, "MANGROVE_API_URL": "https://other.example.com/api/v1/"}
    )
    assert settings.token.reveal() == ENV_TOKEN
    assert settings.base_url == "https://other.example.com/api/v1"


def test_defaults_apply_last() -> None:
    settings = resolve(token=TOKEN)
    assert settings.base_url == DEFAULT_BASE_URL == "https://app.gomangrove.com/api/v1"
    assert (settings.connect_timeout, settings.read_timeout) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)
    assert settings.page_size == DEFAULT_PAGE_SIZE == 100


def test_empty_or_blank_values_count_as_unset() -> None:
    settings = resolve(token="   ", environ={"MANGROVE_API_TOKEN": f"  {ENV_TOKEN}\n", "MANGROVE_API_URL": "  "})
    assert settings.token.reveal() == ENV_TOKEN
    assert settings.base_url == DEFAULT_BASE_URL


def test_a_secret_can_be_passed_as_the_token() -> None:
    assert resolve(token=Secret(TOKEN)).token.reveal() == TOKEN


def test_process_environment_is_read_when_no_environ_is_injected() -> None:
    # Not mutating os.environ: whatever it holds, the explicit argument still wins.
    settings = Settings.resolve(token=TOKEN, base_url="https://example.com", interactive=False)
    assert settings.token.reveal() == TOKEN


def test_the_pure_modules_never_read_the_environment() -> None:
    package = Path(settings_module.__file__).parent
    for path in (package / "errors.py", package / "_responses.py", package / "periods.py",
                 *(package / "frames").glob("*.py")):
        source = path.read_text()
        assert "environ" not in source.replace("environment", ""), path.name
        assert "getenv" not in source, path.name
    assert "os.environ" in (package / "settings.py").read_text()


# --- no token -------------------------------------------------------------------------------------------


def test_missing_token_when_not_interactive_says_how_to_provide_one() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve()
    message = str(caught.value)
    assert "MANGROVE_API_TOKEN" in message
    assert "token=" in message


def test_missing_token_prompts_when_interactive() -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return f"{TOKEN}\n"

    settings = resolve(interactive=True, getpass=fake_getpass)
    assert settings.token.reveal() == TOKEN
    assert len(prompts) == 1
    assert "hidden" in prompts[0]


def test_prompt_is_not_used_when_a_token_is_found() -> None:
    def no_prompt(prompt: str) -> str:
        raise AssertionError("should not prompt")

    assert resolve(token=TOKEN, interactive=True, getpass=no_prompt).token.reveal() == TOKEN


def test_empty_answer_at_the_prompt_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        resolve(interactive=True, getpass=lambda prompt: "")


def test_prompt_that_cannot_read_input_becomes_a_configuration_error() -> None:
    class StdinNotImplementedError(Exception):
        """Stands in for IPython's error under papermill/nbclient."""

    def no_stdin(prompt: str) -> str:
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input")

    with pytest.raises(ConfigurationError, match="MANGROVE_API_TOKEN") as caught:
        resolve(interactive=True, getpass=no_stdin)
    assert caught.value.__cause__ is None
    with pytest.raises(ConfigurationError):
        resolve(interactive=True, getpass=lambda prompt: (_ for _ in ()).throw(EOFError()))


def test_interactive_detection_without_a_terminal_or_kernel_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    class NotATerminal:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", NotATerminal())
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    with pytest.raises(ConfigurationError):
        Settings.resolve(environ={}, getpass=lambda prompt: TOKEN)


# --- the base URL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/api/v1",
        "http://127.1.2.3/api/v1",
        "http://localhost:8765/api/v1",
        "http://LOCALHOST/api/v1",
        "http://[::1]:8765/api/v1",
    ],
)
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    assert resolve(token=TOKEN, base_url=url).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://app.gomangrove.com/api/v1",
        "http://10.0.0.5/api/v1",
        "http://128.0.0.1/api/v1",
        "http://localhost.evil.example/api/v1",
        "http://[::2]/api/v1",
    ],
)
def test_plain_http_elsewhere_is_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(token=TOKEN, base_url=url)
    message = str(caught.value)
    assert "https://" in message
    assert "allow_http=True" in message
    assert "unencrypted" in message


def test_plain_http_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="MANGROVE_API_URL"):
        resolve(token=TOKEN, environ={"MANGROVE_API_URL": "http://example.com/api/v1"})


def test_allow_http_opts_in() -> None:
    settings = resolve(token=TOKEN, base_url="http://emulator.internal:8000/api/v1", allow_http=True)
    assert settings.base_url == "http://emulator.internal:8000/api/v1"
    assert settings.allow_http is True


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com", "example.com/api/v1", "https://", "https://example.com/api?x=1", "https://h:99999/"],
)
def test_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        resolve(token=TOKEN, base_url=url)


def test_credentials_in_the_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(token=TOKEN, base_url="https://alice:hunter2@example.com/api/v1")
    assert "hunter2" not in str(caught.value)


def test_trailing_slashes_are_stripped() -> None:
    settings = resolve(token=TOKEN, base_url="https://App.GoMangrove.com:443/api/v1//")
    assert settings.base_url == "https://App.GoMangrove.com:443/api/v1"


# --- the other options ----------------------------------------------------------------------------------


def test_timeouts_and_overrides_are_applied() -> None:
    settings = resolve(token=TOKEN, connect_timeout=2, read_timeout=9.5, call_deadline=60, page_size=50)
    assert (settings.connect_timeout, settings.read_timeout) == (2, 9.5)
    assert settings.call_deadline == 60
    assert settings.page_size == 50


@pytest.mark.parametrize(
    "options",
    [
        {"connect_timeout": 0},
        {"read_timeout": -1.0},
        {"call_deadline": True},
        {"page_size": 0},
        {"page_size": 2.5},
        {"max_retries": -1},
        {"backoff_initial": 10.0, "backoff_max": 1.0},
        {"poll_min_interval": 3.0, "poll_interval": 2.0},
        {"rate_limit_max_wait": -1},
    ],
)
def test_bad_numbers_are_refused_when_built(options: dict) -> None:
    with pytest.raises(ConfigurationError):
        resolve(token=TOKEN, **options)


def test_unknown_option_is_a_type_error_listing_valid_ones() -> None:
    with pytest.raises(TypeError, match="page_size"):
        resolve(token=TOKEN, pagesize=10)


def test_bad_url_or_option_fails_before_any_prompt() -> None:
    prompts: list[str] = []

    def record_prompt(prompt: str) -> str:
        prompts.append(prompt)
        return TOKEN

    with pytest.raises(TypeError):
        resolve(interactive=True, getpass=record_prompt, pagesize=10)
    with pytest.raises(ConfigurationError, match="plain http"):
        resolve(interactive=True, getpass=record_prompt, base_url="http://example.com")
    assert prompts == []


def test_settings_are_frozen_and_replace_revalidates() -> None:
    settings = resolve(token=TOKEN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.page_size = 5  # type: ignore[misc]
    assert dataclasses.replace(settings, page_size=5).page_size == 5
    with pytest.raises(ConfigurationError):
        dataclasses.replace(settings, base_url="http://example.com")


def test_settings_module_does_not_import_pandas_at_import_time() -> None:
    source = Path(settings_module.__file__).read_text()
    assert "import pandas" not in source


@pytest.mark.parametrize(("token", "what"), [
    ("mgv_wrapped_copy_0123\nabcdef7f3c", "a line break"),
    ("mgv_wrapped_copy_0123\r\nabcdef7f3c", "a line break"),
    ("mgv_pasted\u200b0123456789abcdef", "U+200B ZERO WIDTH SPACE"),
    ("mgv_typed\u2019quote_0123456789", "U+2019 RIGHT SINGLE QUOTATION MARK"),
    ("mgv_two words_0123456789", "a space"),
    ("mgv_latin1_\xe9t\xe9_0123456789", "U+00E9"),
])
def test_a_token_that_cannot_be_sent_is_a_configuration_error_that_does_not_quote_it(token: str, what: str) -> None:
    for build in (lambda: Settings.resolve(token, environ={}),
                  lambda: Settings.resolve(environ={"MANGROVE_API_TOKEN": token}),
                  lambda: mnb.connect(token)):
        with pytest.raises(mnb.ConfigurationError, match=re.escape(what)) as caught:
            build()
        shown = "".join(traceback.format_exception(caught.value))
        for part in token.split():
            assert part not in shown and part not in repr(caught.value.args)
        assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_a_token_with_a_trailing_crlf_from_a_dotenv_file_is_stripped_and_works() -> None:
    settings = Settings.resolve(environ={"MANGROVE_API_TOKEN": "mgv_from_dotenv_0123456789\r\n"})
    assert settings.token.reveal() == "mgv_from_dotenv_0123456789"


def test_a_settings_token_is_redacted_from_every_mangrove_error_in_the_process() -> None:
    token = "mgv_redact_me_0123456789abcdef"
    Settings.resolve(token, environ={})
    import base64
    from urllib.parse import quote

    echoes = [token, f"Bearer {token}", quote(token, safe=""), base64.b64encode(token.encode()).decode()]
    for echo in echoes:
        error = mnb.MangroveError(f"the gateway said: Authorization {echo} is not allowed")
        assert token not in str(error) and echo not in str(error) and "[redacted]" in str(error)
        assert all(token not in str(arg) for arg in error.args)


def test_an_emulator_token_is_never_sent_to_a_remote_api() -> None:
    with pytest.raises(mnb.ConfigurationError, match="local emulator's") as caught:
        Settings.resolve("mgv_emu_0123456789abcdefghij", environ={})
    assert "mgv_emu_0123456789" not in str(caught.value)
    assert Settings.resolve("mgv_emu_0123456789abcdefghij", "http://127.0.0.1:8765/api/v1", environ={})


def _environment_reads(source: str) -> list[int]:
    """Lines that touch ``os.environ`` (or call ``os.getenv``) other than to pass the whole environment on to a
    child process (``{**os.environ, ...}`` or ``dict(os.environ, ...)``): reading one variable, or keeping the
    mapping to read later (``env = os.environ``)."""
    import ast

    tree = ast.parse(source)
    passed_on = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            passed_on.update(id(value) for key, value in zip(node.keys, node.values, strict=True) if key is None)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and node.args:
            passed_on.add(id(node.args[0]))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "os" and (
                node.attr == "getenv" or (node.attr == "environ" and id(node) not in passed_on)):
            lines.append(node.lineno)
    return lines


def test_settings_is_the_one_module_that_reads_an_environment_variable() -> None:
    package = Path(settings_module.__file__).parent
    readers = {str(path.relative_to(package)): lines for path in sorted(package.rglob("*.py"))
               if path.name != "settings.py" and (lines := _environment_reads(path.read_text()))}
    assert readers == {}, f"read os.environ in settings.py (the one reader) and pass the value on: {readers}"


def test_the_environment_read_detector_sees_each_spelling() -> None:
    spellings = ["os.environ['X']", "os.environ.get('X')", "os.getenv('X')", "os.environ.setdefault('X', '1')",
                 "os.environ if True else {}"]
    assert all(_environment_reads(f"import os\nvalue = {spelling}\n") == [2] for spelling in spellings)
    assert _environment_reads("import os\nchild = {**os.environ, 'X': '1'}\nalso = dict(os.environ)\n") == []
