"""The C side of the binding: loading libhulynet, its types, and one declarative table of every
function of include/hulynet.h (name, argument types, result type, error check), registered on the
library at import time in the style of libclang's cindex.py.

Nothing here knows the protocol; it only converts between C and Python: status codes to
exceptions, JSON text to Python values (or, for the text API, to ``str`` as it came), seconds to
milliseconds, library-owned strings to ``str``. JSON text is never checked here: the library
checks what is sent, once (HULYNET_EJSON, raised as InvalidJSON).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import json
import math
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint, c_uint64, c_void_p,
                    sizeof)
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import errors
from ._jsontext import JSONText

# ---------------------------------------------------------------------------------------------
# Loading the library
# ---------------------------------------------------------------------------------------------

ENV_LIBRARY = "HULYNET_LIBRARY"
SONAME = "libhulynet.so.0"
# The binding speaks this major version of the C API (HULYNET_VERSION_MAJOR).
API_MAJOR = 0
# The platform wheel carries the library here, under its SONAME (setup.py puts it there).
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _load(environ: Mapping[str, str] = os.environ, package_dir: str = PACKAGE_DIR) -> Tuple[ctypes.CDLL, str]:
    """libhulynet: the path in $HULYNET_LIBRARY, else the copy inside the package (a platform
    wheel's), else the installed library (find_library, then the SONAME through the dynamic
    loader's search path)."""
    explicit = environ.get(ENV_LIBRARY)
    if explicit:
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as error:
            raise errors.LibraryNotFoundError(
                f"cannot load libhulynet from {ENV_LIBRARY}={explicit!r}: {error}") from None
    tried: List[str] = []
    candidates: List[str] = []
    bundled = os.path.join(package_dir, SONAME)
    if os.path.exists(bundled):
        candidates.append(bundled)
    found = ctypes.util.find_library("hulynet")
    if found:
        candidates.append(found)
    candidates.append(SONAME)
    for name in candidates:
        try:
            return ctypes.CDLL(name), name
        except OSError as error:
            tried.append(f"{name}: {error}")
    raise errors.LibraryNotFoundError(
        "cannot load libhulynet. Either install the platform wheel (pip install ./bindings/python), which "
        f"carries it, or set the environment variable {ENV_LIBRARY} to the path of the library (a "
        "libhulynet.so, or SwiftPM's libHulyNetC.so), or install the library where the dynamic loader finds "
        f"it ({SONAME}: cmake --install, then ldconfig, or LD_LIBRARY_PATH). Tried: " + "; ".join(tried))


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

class _Opaque(Structure):
    """An opaque C struct; only pointers to it are used."""


class _server(_Opaque):
    pass


class _client(_Opaque):
    pass


class _reference(_Opaque):
    pass


class _connection(_Opaque):
    pass


class _agent(_Opaque):
    pass


class _container(_Opaque):
    pass


class _request(_Opaque):
    pass


ServerP = POINTER(_server)
ClientP = POINTER(_client)
ReferenceP = POINTER(_reference)
ConnectionP = POINTER(_connection)
AgentP = POINTER(_agent)
ContainerP = POINTER(_container)
RequestP = POINTER(_request)


# hulynet.h's HULYNET_STRUCT_SIZE: an option struct's first field, its size with a tag.
SIZE_TAG = 0x484E << 48


def struct_size(cls) -> int:
    return SIZE_TAG | sizeof(cls)


class TimeoutsC(Structure):
    _fields_ = [("size", c_uint64), ("alive_ms", c_int64), ("unused_container_ms", c_int64),
                ("ping_interval_ms", c_int64), ("request_ms", c_int64), ("tick_ms", c_int64)]


class ServerStatsC(Structure):
    _fields_ = [("clients", c_int64), ("agents", c_int64), ("containers", c_int64), ("requests", c_int64),
                ("malformed", c_int64)]


# hulynet_agent_set_request_mode's modes.
ROLE_STANDBY = 0  # HULYNET_ROLE_*
ROLE_LEADER = 1
ROLE_STOPPED = 2

REQUESTS_ON_CALLBACK_THREAD = 0
REQUESTS_INLINE = 1

LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class LogFieldC(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


LOG_RECORD_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_char_p, POINTER(LogFieldC), c_size_t)
RESULT_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
EVENT_FN = CFUNCTYPE(None, c_void_p, c_char_p)
REFERENCE_FN = CFUNCTYPE(None, c_void_p, c_int, ReferenceP, c_char_p)
START_FN = CFUNCTYPE(c_int, c_void_p, ContainerP, c_char_p, c_char_p, POINTER(c_void_p))
REQUEST_FN = CFUNCTYPE(None, c_void_p, RequestP, c_char_p, c_char_p, c_char_p)
CLIENT_FN = CFUNCTYPE(None, c_void_p, c_char_p)
MOVED_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p)
TERMINATE_FN = CFUNCTYPE(None, c_void_p)
DESTROY_FN = CFUNCTYPE(None, c_void_p)


class SpanAttributeC(Structure):
    _fields_ = [("key", c_char_p), ("type", c_int), ("bool_value", c_int), ("int_value", c_int64),
                ("double_value", c_double), ("string_value", c_char_p)]


class SpanC(Structure):
    """hulynet_span: filled by the library, valid during the span function's call only."""
    _fields_ = [("size", c_uint64), ("name", c_char_p), ("trace_id", c_char_p), ("span_id", c_char_p),
                ("parent_span_id", c_char_p), ("start_ns", c_int64), ("end_ns", c_int64), ("kind", c_int),
                ("status", c_int), ("parent_is_remote", c_int), ("status_message", c_char_p),
                ("attributes", POINTER(SpanAttributeC)), ("attribute_count", c_size_t)]


SPAN_ATTR_STRING, SPAN_ATTR_INT, SPAN_ATTR_DOUBLE, SPAN_ATTR_BOOL = 1, 2, 3, 4
SPAN_FN = CFUNCTYPE(None, c_void_p, POINTER(SpanC))


class ElectionOptionsC(Structure):
    _fields_ = [("size", c_size_t), ("etcd", c_char_p), ("key", c_char_p), ("lease_ttl_ms", c_int64),
                ("advertise", c_char_p)]


class SecurityC(Structure):
    _fields_ = [("size", c_size_t), ("secret_key", c_char_p), ("server_key", c_char_p), ("allow_list_path", c_char_p)]


def security(secret_key: Optional[str], server_key: Optional[str], allow_list: Optional[str]) -> Optional[SecurityC]:
    """A hulynet_security, or None when no field is set."""
    if secret_key is None and server_key is None and allow_list is None:
        return None
    value = SecurityC()
    value.size = ctypes.sizeof(value)
    value.secret_key = None if secret_key is None else text(secret_key, "secret_key")
    value.server_key = None if server_key is None else text(server_key, "server_key")
    value.allow_list_path = None if allow_list is None else text(allow_list, "allow_list")
    return value


class ContainerKindC(Structure):
    _fields_ = [("size", c_uint64), ("kind", c_char_p), ("kind_user", c_void_p), ("start", START_FN),
                ("request", REQUEST_FN), ("connect", CLIENT_FN), ("disconnect", CLIENT_FN),
                ("terminate", TERMINATE_FN), ("kind_user_destroy", DESTROY_FN)]


# ---------------------------------------------------------------------------------------------
# Error checks
# ---------------------------------------------------------------------------------------------

def last_error() -> str:
    text = lib.hulynet_last_error()
    return text.decode("utf-8", "replace") if text else ""


def _check_status(result: int, func: Any, arguments: Any) -> int:
    """errcheck of every function returning a status: raise on a negative one. The detailed message
    is read at once, on the thread that made the call, before anything else can overwrite it."""
    if result < 0:
        raise errors.error_for(result, last_error())
    return result


# ---------------------------------------------------------------------------------------------
# The function table: (name, argument types, result type[, errcheck])
# ---------------------------------------------------------------------------------------------

_OUT_TEXT = POINTER(c_void_p)  # char **: a malloc'd string, read and freed by take_text()

FUNCTIONS: Sequence[tuple] = [
    ("hulynet_version_number", [], c_uint),
    ("hulynet_version_string", [], c_char_p),
    ("hulynet_strerror", [c_int], c_char_p),
    ("hulynet_last_error", [], c_char_p),
    ("hulynet_free", [c_void_p], None),
    ("hulynet_set_log_handler", [LOG_FN, c_void_p, c_int], c_int, _check_status),
    ("hulynet_set_log_handler_v2", [LOG_FN, c_void_p, DESTROY_FN, c_int], c_int, _check_status),
    ("hulynet_set_log_record_handler", [LOG_RECORD_FN, c_void_p, DESTROY_FN, c_int], c_int, _check_status),
    ("hulynet_set_span_handler", [SPAN_FN, c_void_p, DESTROY_FN], c_int, _check_status),
    ("hulynet_spans_dropped", [], c_uint64),
    ("hulynet_shutdown", [c_int64], c_int, _check_status),
    ("hulynet_set_callback_threads", [c_int], c_int, _check_status),
    ("hulynet_callback_threads", [], c_int),

    ("hulynet_server_start", [c_char_p, c_int, POINTER(TimeoutsC), POINTER(ServerP)], c_int, _check_status),
    ("hulynet_server_port", [ServerP], c_int, _check_status),
    ("hulynet_server_stats_get", [ServerP, POINTER(ServerStatsC)], c_int, _check_status),
    ("hulynet_server_destroy", [ServerP], None),
    ("hulynet_server_start_with", [c_char_p, c_int, POINTER(TimeoutsC), POINTER(ElectionOptionsC), POINTER(SecurityC),
                                   POINTER(ServerP)], c_int, _check_status),
    ("hulynet_curve_keypair", [ctypes.c_char_p, ctypes.c_char_p], c_int, _check_status),
    ("hulynet_server_role", [ServerP], c_int, _check_status),
    ("hulynet_server_health", [ServerP, _OUT_TEXT], c_int, _check_status),
    ("hulynet_server_metrics", [ServerP, _OUT_TEXT], c_int, _check_status),
    ("hulynet_server_serve_metrics", [ServerP, c_char_p, c_int, POINTER(c_int)], c_int, _check_status),

    ("hulynet_client_connect", [c_char_p, c_int, POINTER(TimeoutsC), POINTER(ClientP)], c_int, _check_status),
    ("hulynet_client_connect_with", [c_char_p, POINTER(TimeoutsC), POINTER(SecurityC), POINTER(ClientP)], c_int,
     _check_status),
    ("hulynet_client_wait", [ClientP, c_int64], c_int, _check_status),
    ("hulynet_client_id", [ClientP], c_char_p),
    ("hulynet_client_agents", [ClientP, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_client_kinds", [ClientP, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_client_list", [ClientP, c_char_p, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_client_get", [ClientP, c_char_p, c_char_p, c_int64, POINTER(ReferenceP)], c_int, _check_status),
    ("hulynet_client_get_async", [ClientP, c_char_p, c_char_p, c_int64, REFERENCE_FN, c_void_p], c_int,
     _check_status),
    ("hulynet_client_request", [ClientP, c_char_p, c_char_p, c_char_p, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_client_request_async", [ClientP, c_char_p, c_char_p, c_char_p, c_int64, RESULT_FN, c_void_p], c_int,
     _check_status),
    ("hulynet_client_add_listener", [ClientP, EVENT_FN, c_void_p, POINTER(c_uint64)], c_int, _check_status),
    ("hulynet_client_add_listener_v2", [ClientP, EVENT_FN, c_void_p, DESTROY_FN, POINTER(c_uint64)], c_int, _check_status),
    ("hulynet_client_remove_listener", [ClientP, c_uint64], c_int, _check_status),
    ("hulynet_client_destroy", [ClientP], None),

    ("hulynet_reference_uuid", [ReferenceP], c_char_p),
    ("hulynet_reference_endpoint", [ReferenceP], c_char_p),
    ("hulynet_reference_set_moved_handler", [ReferenceP, MOVED_FN, c_void_p], c_int, _check_status),
    ("hulynet_reference_set_moved_handler_v2", [ReferenceP, MOVED_FN, c_void_p, DESTROY_FN], c_int, _check_status),
    ("hulynet_reference_request", [ReferenceP, c_char_p, c_char_p, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_reference_request_async", [ReferenceP, c_char_p, c_char_p, c_int64, RESULT_FN, c_void_p], c_int,
     _check_status),
    ("hulynet_reference_connect", [ReferenceP, c_int64, POINTER(ConnectionP)], c_int, _check_status),
    ("hulynet_reference_release", [ReferenceP, c_int64], c_int, _check_status),
    ("hulynet_reference_destroy", [ReferenceP], None),

    ("hulynet_connection_set_event_handler", [ConnectionP, EVENT_FN, c_void_p], c_int, _check_status),
    ("hulynet_connection_set_event_handler_v2", [ConnectionP, EVENT_FN, c_void_p, DESTROY_FN], c_int, _check_status),
    ("hulynet_connection_request", [ConnectionP, c_char_p, c_char_p, c_int64, _OUT_TEXT], c_int, _check_status),
    ("hulynet_connection_request_async", [ConnectionP, c_char_p, c_char_p, c_int64, RESULT_FN, c_void_p], c_int,
     _check_status),
    ("hulynet_connection_destroy", [ConnectionP], None),

    ("hulynet_agent_create", [c_char_p, POINTER(ContainerKindC), c_size_t, POINTER(AgentP)], c_int, _check_status),
    ("hulynet_agent_uuid", [AgentP], c_char_p),
    ("hulynet_agent_add_stateless", [AgentP, c_char_p, c_char_p, c_void_p], c_int, _check_status),
    ("hulynet_agent_set_request_mode", [AgentP, c_char_p, c_int], c_int, _check_status),
    ("hulynet_agent_set_direct", [AgentP, c_char_p, c_int], c_int, _check_status),
    ("hulynet_agent_stateless_container", [AgentP, c_char_p], ContainerP),
    ("hulynet_client_serve_agent", [ClientP, AgentP, c_char_p, c_int, c_int64], c_int, _check_status),
    ("hulynet_client_register_agent", [ClientP, AgentP, c_int64], c_int, _check_status),
    ("hulynet_agent_destroy", [AgentP], None),

    ("hulynet_container_uuid", [ContainerP], c_char_p),
    ("hulynet_container_start_error", [ContainerP, c_char_p], c_int, _check_status),
    ("hulynet_container_emit", [ContainerP, c_char_p, c_char_p, POINTER(c_int)], c_int, _check_status),
    ("hulynet_request_reply", [RequestP, c_char_p], c_int, _check_status),
    ("hulynet_request_fail", [RequestP, c_char_p], c_int, _check_status),
    ("hulynet_request_fail_status", [RequestP, c_int, c_char_p], c_int, _check_status),
]


def _register(library: ctypes.CDLL, item: tuple) -> None:
    name, argtypes, restype = item[0], item[1], item[2]
    try:
        function = getattr(library, name)
    except AttributeError:
        raise errors.LibraryNotFoundError(f"{library._name} has no {name}: not a compatible libhulynet") from None
    function.argtypes = argtypes
    function.restype = restype
    if len(item) > 3 and item[3] is not None:
        function.errcheck = item[3]


lib, library_path = _load()
for _item in FUNCTIONS:
    _register(lib, _item)

if lib.hulynet_version_number() // 10000 != API_MAJOR:
    raise errors.LibraryNotFoundError(
        f"{library_path} is libhulynet {lib.hulynet_version_string().decode()}; this binding needs {API_MAJOR}.x")

# NULL callbacks (a prototype called without arguments is a NULL function pointer).
NULL_DESTROY_FN = DESTROY_FN()
NULL_EVENT_FN = EVENT_FN()
NULL_MOVED_FN = MOVED_FN()
NULL_LOG_FN = LOG_FN()
NULL_LOG_RECORD_FN = LOG_RECORD_FN()
NULL_SPAN_FN = SPAN_FN()

# ---------------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------------


def text(value: Optional[str], name: str) -> Optional[bytes]:
    """A str argument as NUL-terminated UTF-8 for C (None stays NULL)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\0" in value:  # C would silently see only what comes before it
        raise errors.InvalidArgument(errors.EINVAL, f"{name} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:  # lone surrogates
        raise errors.InvalidArgument(errors.EINVAL, f"{name} is not valid text: {error}") from None


def required_text(value: str, name: str) -> bytes:
    """A str argument that must not be None."""
    if value is None:
        raise TypeError(f"{name} must be a str, not None")
    return text(value, name)


def dumps(value: Any, name: str = "data") -> bytes:
    """A Python value as JSON text for C, written once, compactly; a JSONText as its text, as it
    is. Raises TypeError for values JSON cannot hold (as json.dumps does) and InvalidJSON for NaN,
    infinities and circular structures, before C is called."""
    if isinstance(value, JSONText):
        return required_text(value.text, name)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except TypeError as error:
        raise TypeError(f"{name} is not JSON-serialisable: {error}") from None
    except (ValueError, RecursionError) as error:
        raise errors.InvalidJSON(errors.EJSON, f"{name} cannot be written as JSON: {error}") from None


def loads(data: Optional[bytes]) -> Any:
    """JSON text from C as a Python value."""
    if data is None:
        return None
    return json.loads(data.decode("utf-8"))


def json_text(value: Optional[str], name: str = "data") -> Optional[bytes]:
    """JSON text (a str, or a JSONText) for C as it is, unchecked: the library checks it (None:
    NULL, JSON null)."""
    if isinstance(value, JSONText):
        value = value.text
    return text(value, name)


def text_of(data: Optional[bytes]) -> str:
    """JSON text from C as a str, byte for byte (the library hands out UTF-8 only; NULL: "null")."""
    return data.decode("utf-8") if data is not None else "null"


def take_text(out: c_void_p) -> Optional[bytes]:
    """The bytes of a `char **out` result, freeing the C string."""
    if not out.value:
        return None
    try:
        return ctypes.string_at(out.value)
    finally:
        lib.hulynet_free(out)


def decode(value: Optional[bytes]) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


def milliseconds(timeout: Optional[float], name: str = "timeout") -> int:
    """Seconds (None: the library's default) as the C API's milliseconds (0: the default)."""
    if timeout is None:
        return 0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise errors.InvalidArgument(errors.EINVAL, f"{name} must be a positive number of seconds or None, got {timeout}")
    # Checked here: ctypes would silently wrap milliseconds beyond int64 into a small timeout.
    # (Within int64 the library checks the range itself.)
    return int64(max(1, int(round(timeout * 1000))), name)


_INT64_MAX = 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def int64(value: int, name: str) -> int:
    """`value` for a C int64_t argument, refused rather than wrapped when it does not fit."""
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise errors.InvalidArgument(errors.EINVAL, f"{name} {value} does not fit in a 64-bit integer")
    return value


def int_arg(value: int, name: str) -> int:
    """An int for a C `int` argument: refused rather than wrapped when it does not fit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not _INT_MIN <= value <= _INT_MAX:
        raise errors.InvalidArgument(errors.EINVAL, f"{name} {value} does not fit in a C int")
    return value


def out_text() -> c_void_p:
    """A `char *` to pass by reference as a `char **json_out`."""
    return c_void_p()


# ---------------------------------------------------------------------------------------------
# Objects handed to C as `void *user`
# ---------------------------------------------------------------------------------------------

class Registry:
    """Python objects that C callbacks refer to by a small integer passed as `void *user`.

    The callbacks themselves are module-level CFUNCTYPE objects that live as long as the module;
    what a callback needs (a Future, a listener, a container instance) is kept here while C may
    still call back, so nothing is collected under the library's feet and a stale `user` value is
    simply not found."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: Dict[int, Any] = {}
        self._counter = itertools.count(1)

    def add(self, item: Any) -> int:
        with self._lock:
            key = next(self._counter)
            self._items[key] = item
            return key

    def get(self, key: Optional[int]) -> Any:
        if key is None:
            return None
        with self._lock:
            return self._items.get(key)

    def pop(self, key: Optional[int]) -> Any:
        if key is None:
            return None
        with self._lock:
            return self._items.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


registry = Registry()


def version() -> str:
    return lib.hulynet_version_string().decode()


def set_callback_threads(count: int = 0) -> None:
    """Sets the number of the library's callback threads, which run every callback of this binding
    (0: the default, max(4, 2 x cores), or $HULYNET_CALLBACK_THREADS)."""
    lib.hulynet_set_callback_threads(count)


def callback_threads() -> int:
    """The number of the library's callback threads."""
    return lib.hulynet_callback_threads()


def strerror(code: int) -> str:
    return lib.hulynet_strerror(code).decode()
