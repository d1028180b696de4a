"""The exceptions of hulynet: one class per status code of hulynet.h.

Every failed library call raises a subclass of :class:`Error` carrying the status ``code`` (the
negative ``HULYNET_E...`` value) and the detailed ``message`` (``hulynet_last_error()`` read right
after the call, on the calling thread; for :class:`RemoteError` the text the other side answered).
Where a builtin exception means the same thing, the class derives from it too, so
``except TimeoutError`` or ``except ValueError`` work as a Python programmer expects.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

OK = 0
EINVAL = -1
EJSON = -2
ENOTFOUND = -3
ETIMEOUT = -4
ECLOSED = -5
EREMOTE = -6
EBIND = -7
ECONNECT = -8
EINTERNAL = -9
EAGAIN = -10
ELIMIT = -11

_NAMES = {
    EINVAL: "invalid argument",
    EJSON: "invalid JSON",
    ENOTFOUND: "not found",
    ETIMEOUT: "timed out",
    ECLOSED: "closed",
    EREMOTE: "the other side answered with an error",
    EBIND: "cannot bind the address",
    ECONNECT: "cannot connect",
    EINTERNAL: "internal error",
    EAGAIN: "retry later",
    ELIMIT: "a limit is reached",
}


class Error(Exception):
    """A hulynet failure: ``code`` is the status (a negative ``HULYNET_E...``), ``message`` the detail."""

    code: int = EINTERNAL

    def __init__(self, code: Optional[int] = None, message: str = "") -> None:
        if code is None:
            code = type(self).code
        text = message or _NAMES.get(code, "unknown status")
        super().__init__(text)
        self.code = code
        self.message = text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"

    def __reduce__(self):  # picklable despite the two-argument constructor
        return (type(self), (self.code, self.message))


class InvalidArgument(Error, ValueError):
    """HULYNET_EINVAL: a bad argument, an unknown or destroyed handle, or misuse (a blocking call
    from inside a callback, say)."""

    code = EINVAL


class InvalidJSON(Error, ValueError):
    """HULYNET_EJSON: a JSON value that does not parse (or, raised by the binding, that cannot be
    written as JSON: NaN, infinity, a circular structure)."""

    code = EJSON


class NotFound(Error, LookupError):
    """HULYNET_ENOTFOUND: no such container, agent, connected client or subscription."""

    code = ENOTFOUND


class Timeout(Error, TimeoutError):
    """HULYNET_ETIMEOUT: no answer within the time allowed."""

    code = ETIMEOUT


class Closed(Error):
    """HULYNET_ECLOSED: the object (or the client it belongs to) is closed."""

    code = ECLOSED


class RemoteError(Error):
    """HULYNET_EREMOTE: the other side answered with an error; ``message`` is its text."""

    code = EREMOTE


class BindError(Error, OSError):
    """HULYNET_EBIND: an address could not be bound (a port in use, say)."""

    code = EBIND


class ConnectError(Error, ConnectionError):
    """HULYNET_ECONNECT: a connection could not be set up."""

    code = ECONNECT


class InternalError(Error):
    """HULYNET_EINTERNAL (or a status this binding does not know): a defect of the library."""

    code = EINTERNAL


class RetryLater(Error):
    """HULYNET_EAGAIN: refused for now, retry later (too many requests in flight, a rate limit, a
    coordinator restoring its state, a busy container). A container's request() may raise it to
    answer so."""

    code = EAGAIN


class LimitReached(Error):
    """HULYNET_ELIMIT: a configured limit refuses it for good (the most clients, the largest
    message, ...). A container's request() may raise it to answer so."""

    code = ELIMIT


class LibraryNotFoundError(ImportError):
    """libhulynet could not be loaded (see the message for the ways to point at it)."""


_CLASSES: Dict[int, Type[Error]] = {
    cls.code: cls
    for cls in (InvalidArgument, InvalidJSON, NotFound, Timeout, Closed, RemoteError, BindError, ConnectError,
                InternalError, RetryLater, LimitReached)
}


def error_for(code: int, message: str) -> Error:
    """The exception for a status code (an :class:`InternalError` for codes this binding does not know)."""
    return _CLASSES.get(code, InternalError)(code, message)
