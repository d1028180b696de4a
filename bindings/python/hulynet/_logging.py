"""The library's log messages: hulynet_set_log_handler, and a forwarder to the `logging` module."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from . import _ffi
from ._base import after_close_at_exit, callback_scope
from ._ffi import lib

LOG_TRACE = 0
LOG_DEBUG = 1
LOG_INFO = 2
LOG_NOTICE = 3
LOG_WARNING = 4
LOG_ERROR = 5
LOG_CRITICAL = 6

# hulynet levels as `logging` levels (TRACE and NOTICE have none of their own).
_TO_LOGGING = {LOG_TRACE: 5, LOG_DEBUG: logging.DEBUG, LOG_INFO: logging.INFO, LOG_NOTICE: 25,
               LOG_WARNING: logging.WARNING, LOG_ERROR: logging.ERROR, LOG_CRITICAL: logging.CRITICAL}

_handler: Optional[Callable[[int, str], None]] = None


def _log(user: Optional[int], level: int, message: Optional[bytes]) -> None:
    with callback_scope:
        handler = _handler
        if handler is None:
            return
        try:
            handler(level, _ffi.decode(message))
        except BaseException:
            pass  # a log handler that fails has nowhere to report it


_log_callback = _ffi.LOG_FN(_log)


def set_log_handler(fn: Optional[Callable[[int, str], None]], level: int = LOG_WARNING) -> None:
    """Routes the library's log messages of `level` (a hulynet.LOG_* value) and above to
    fn(level, message), called on library threads, possibly several at once. None restores the
    default (warnings and above to stderr)."""
    global _handler
    level = _ffi.int_arg(level, "level")
    if fn is None:
        lib.hulynet_set_log_handler(_ffi.NULL_LOG_FN, None, level)
        _handler = None
        return
    if not callable(fn):
        raise TypeError("the log handler must be callable or None")
    previous, _handler = _handler, fn
    try:
        lib.hulynet_set_log_handler(_log_callback, None, level)
    except BaseException:
        _handler = previous
        raise


def _record(user: Optional[int], level: int, logger: Optional[bytes], message: Optional[bytes], fields, count: int) -> None:
    with callback_scope:
        try:
            values = {_ffi.decode(fields[i].key): _ffi.decode(fields[i].value) for i in range(count)}
            # The fields apart, as `record.hulynet` (agent, client, container, kind, ...).
            logging.getLogger(_ffi.decode(logger) or "hulynet").log(
                _TO_LOGGING.get(level, logging.WARNING), "%s", _ffi.decode(message), extra={"hulynet": values})
        except BaseException:
            pass  # a log handler that fails has nowhere to report it


_record_callback = _ffi.LOG_RECORD_FN(_record)


def log_to_logging(level: int = logging.INFO) -> None:
    """Forwards the library's log records to the `logging` module: logger "hulynet" (and its
    children "hulynet.server", "hulynet.client", ...), from `level` (a `logging` level) up. Each
    record's structured fields (agent, client, container, kind, ...) are its `hulynet` attribute,
    a dict, for formatters and structured handlers."""
    global _handler
    threshold = min((c for c, py in _TO_LOGGING.items() if py >= level), default=LOG_CRITICAL)
    lib.hulynet_set_log_record_handler(_record_callback, None, _ffi.NULL_DESTROY_FN, threshold)
    _handler = _record  # set: reset at exit like a line handler


def _reset_at_exit() -> None:
    global _handler
    if _handler is not None:
        lib.hulynet_set_log_handler(_ffi.NULL_LOG_FN, None, LOG_WARNING)
        _handler = None


after_close_at_exit.append(_reset_at_exit)
