"""SIGTERM and SIGHUP turned into Ctrl-C while a report renders, so that one cleanup serves all three; which
signal it was is kept for the message and the exit code (``take_stopped``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

# The signal (SIGTERM or SIGHUP) that stopped the running command, when one did: said, and its exit code, by
# _messages.interrupted (through take_stopped).
_stopped_by: int | None = None


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While a report renders, SIGTERM and SIGHUP (``timeout``, systemd, a closed terminal) interrupt it as Ctrl-C
    does (a KeyboardInterrupt), so the same cleanup runs: kernels stopped, the read cache, the kernels' logs and
    connection files removed, the browser closed. A second SIGTERM or SIGHUP while that cleanup runs is ignored
    (SIGKILL stops it for good; Ctrl-C again still interrupts it).

    An interrupt that lands while Python runs a weakref callback or a ``__del__`` (asyncio's and the garbage
    collector's) is only printed as "Exception ignored in ..." and lost, and the command would go on to exit 0: such
    a lost interrupt is never printed, and raised again a moment later (``sys.unraisablehook`` has SIGINT sent to the
    main thread once the finaliser returned). The handlers and hook in place before are restored after; outside the
    main thread nothing changes."""
    import _thread
    import signal
    import threading

    global _stopped_by
    _stopped_by = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = [False]  # a KeyboardInterrupt of ours is on its way (not lost)

    def stop(number: int, _frame: object) -> None:
        global _stopped_by
        if number != signal.SIGINT:
            if raised[0]:
                return  # the cleanup of the first one is running
            _stopped_by = _stopped_by or number
        raised[0] = True
        raise KeyboardInterrupt(signal.Signals(_stopped_by or number).name)

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt) and raised[0]:
            raised[0] = False
            # Raised again by ``stop``, from another thread a moment later: by then this hook and the callback
            # that lost it have returned (a signal now would be handled, and lost, in this hook).
            again = threading.Timer(0.05, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT)) \
                if hasattr(signal, "pthread_kill") else threading.Timer(0.05, _thread.interrupt_main)
            again.daemon = True
            again.start()
            return
        hook(info)

    numbers = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {number: signal.signal(number, stop) for number in numbers}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    except KeyboardInterrupt:
        raise  # _messages.interrupted says which signal it was
    except BaseException:
        _stopped_by = None
        raise
    else:
        _stopped_by = None
    finally:
        sys.unraisablehook = hook
        for number, handler in previous.items():
            signal.signal(number, handler)


def take_stopped() -> int | None:
    """The signal that stopped the command (SIGTERM or SIGHUP), once: None after, or when it was Ctrl-C."""
    global _stopped_by
    stopped, _stopped_by = _stopped_by, None
    return stopped
