"""The library's spans: hulynet_set_span_handler (experimental in hulynet.h), as Span objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Union

from . import _ffi
from ._base import after_close_at_exit, callback_scope, log_callback_error
from ._ffi import lib

AttributeValue = Union[str, int, float, bool]

# OpenTelemetry's names for hulynet.h's numbers, so that `SpanKind[span.kind.upper()]` and
# `StatusCode[span.status.upper()]` of the OpenTelemetry API take them as they are.
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}


@dataclass(frozen=True)
class Span:
    """A finished span of this process's servers, clients and agents (a copy: keep it as long as
    you like). Times are wall-clock nanoseconds since the Unix epoch."""

    name: str
    trace_id: str                  # 32 lowercase hex digits
    span_id: str                   # 16
    parent_span_id: Optional[str]  # 16, or None for the root of a trace
    parent_is_remote: bool         # the parent came from another process (traceparent)
    kind: str                      # "internal", "server", "client", "producer", "consumer"
    start_ns: int
    end_ns: int
    status: str                    # "unset", "ok", "error"
    status_message: str
    attributes: Dict[str, AttributeValue] = field(default_factory=dict)


def _copy(span: _ffi.SpanC) -> Span:
    attributes: Dict[str, AttributeValue] = {}
    for index in range(span.attribute_count):
        item = span.attributes[index]
        if item.type == _ffi.SPAN_ATTR_STRING:
            value: AttributeValue = _ffi.decode(item.string_value)
        elif item.type == _ffi.SPAN_ATTR_INT:
            value = int(item.int_value)
        elif item.type == _ffi.SPAN_ATTR_DOUBLE:
            value = float(item.double_value)
        elif item.type == _ffi.SPAN_ATTR_BOOL:
            value = bool(item.bool_value)
        else:
            continue  # a type of a newer library
        attributes[_ffi.decode(item.key)] = value
    parent = _ffi.decode(span.parent_span_id)
    return Span(name=_ffi.decode(span.name), trace_id=_ffi.decode(span.trace_id), span_id=_ffi.decode(span.span_id),
                parent_span_id=parent or None, parent_is_remote=bool(span.parent_is_remote),
                kind=_KINDS.get(span.kind, "internal"), start_ns=int(span.start_ns), end_ns=int(span.end_ns),
                status=_STATUSES.get(span.status, "unset"), status_message=_ffi.decode(span.status_message),
                attributes=attributes)


_lock = threading.Lock()
_handler: Optional[Callable[[Span], None]] = None


def _on_span(user: Optional[int], pointer: Any) -> None:
    with callback_scope:
        handler = _handler
        if handler is None or not pointer:
            return
        try:
            handler(_copy(pointer.contents))
        except BaseException:
            log_callback_error(f"the span handler {handler!r}")


_span_callback = _ffi.SPAN_FN(_on_span)


def set_span_handler(fn: Optional[Callable[[Span], None]]) -> None:
    """Hands the spans that end from now on to fn(span), on a library thread, one call at a time,
    in the order they ended; None removes it. Set it before making the Servers and Clients to
    trace (each reads the process's tracer once, when made). A handler slower than spans end
    loses spans (spans_dropped()), never stalls the network; what it raises is logged."""
    global _handler
    if fn is not None and not callable(fn):
        raise TypeError("the span handler must be callable or None")
    with _lock:
        if fn is None:
            lib.hulynet_set_span_handler(_ffi.NULL_SPAN_FN, None, _ffi.NULL_DESTROY_FN)
            _handler = None
            return
        previous, _handler = _handler, fn
        try:
            lib.hulynet_set_span_handler(_span_callback, None, _ffi.NULL_DESTROY_FN)
        except BaseException:
            _handler = previous
            raise


def spans_dropped() -> int:
    """Spans dropped since the process started because the handler's queue was full."""
    return int(lib.hulynet_spans_dropped())


def _reset_at_exit() -> None:
    global _handler
    if _handler is not None:
        lib.hulynet_set_span_handler(_ffi.NULL_SPAN_FN, None, _ffi.NULL_DESTROY_FN)
        _handler = None


after_close_at_exit.append(_reset_at_exit)
