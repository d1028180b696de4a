"""What every hulynet object shares: a C handle closed once, context management, a __del__ safety
net, the objects still open at exit, and the callback context (logging of exceptions raised in
user callbacks, which must never reach C)."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any, Optional

from . import errors

logger = logging.getLogger("hulynet")

_callback_state = threading.local()


def in_callback() -> bool:
    """True on a library thread while it runs one of this binding's callbacks."""
    return getattr(_callback_state, "depth", 0) > 0


class CallbackScope:
    """Marks the current thread as running a callback (see in_callback)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _callback_state.depth = getattr(_callback_state, "depth", 0) + 1

    def __exit__(self, *exc: Any) -> None:
        _callback_state.depth -= 1


callback_scope = CallbackScope()


def log_callback_error(what: str) -> None:
    """Logs the exception being handled, raised by user code in a callback."""
    try:
        logger.exception("exception in %s (ignored; callbacks must not raise)", what)
    except BaseException:  # logging itself failed: nothing more can be done on a library thread
        pass


# Open objects by closing order: at exit, connections close before references, references before
# agents, agents before clients, clients before servers, so no library thread calls into an
# interpreter that is shutting down.
_LIVE_ORDER = ("Connection", "Reference", "Agent", "Client", "Server")
_live = {name: weakref.WeakSet() for name in _LIVE_ORDER}


class Resource:
    """An object owning one C handle. close() is idempotent and thread-safe; the object is a context
    manager; __del__ closes it if the program did not (never raising)."""

    _what = "object"
    _live_group: Optional[str] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: Any = None

    def _opened(self, handle: Any) -> None:
        self._handle = handle
        if self._live_group is not None:
            _live[self._live_group].add(self)

    def _take_handle(self) -> Any:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return None
        with lock:
            handle, self._handle = self._handle, None
        return handle

    def _live_handle(self) -> Any:
        handle = self._handle
        if handle is None:
            raise errors.Closed(errors.ECLOSED, f"the {self._what} is closed")
        return handle

    @property
    def closed(self) -> bool:
        return getattr(self, "_handle", None) is None

    def close(self) -> None:
        """Frees the C handle. Idempotent."""
        handle = self._take_handle()
        if handle is not None:
            self._destroy(handle)

    def _destroy(self, handle: Any) -> None:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:
            pass


# Run after every open object is closed at exit (resetting the log handler, say).
after_close_at_exit: list = []


@atexit.register
def _close_all_at_exit() -> None:
    for name in _LIVE_ORDER:
        for item in list(_live[name]):
            try:
                item.close()
            except BaseException:
                pass
    for hook in after_close_at_exit:
        try:
            hook()
        except BaseException:
            pass
