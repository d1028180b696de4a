"""hulynet: the Huly virtual network (a coordinator, agents hosting containers, and clients),
as a thin Python binding of libhulynet (include/hulynet.h) through ctypes.

    import hulynet

    class Greeter(hulynet.Container):
        kind = "greeter"
        def request(self, operation, data, client_id):
            return {"hello": data}

    with hulynet.Server() as server, \\
         hulynet.Client("127.0.0.1", server.port) as client, \\
         hulynet.Agent([Greeter]) as agent:
        client.wait(timeout=5)
        client.serve_agent(agent)
        with client.get("greeter") as greeter:
            print(greeter.request("greet", "world"))

The library is found through $HULYNET_LIBRARY (a path), else inside this package (the platform
wheel carries it), else installed as libhulynet.so.0.
"""

from ._ffi import library_path, registry as _registry
from ._ffi import callback_threads, set_callback_threads, strerror, version as library_version
from .errors import (BindError, Closed, ConnectError, Error, InternalError, InvalidArgument, InvalidJSON,
                     LibraryNotFoundError, LimitReached, NotFound, RemoteError, RetryLater, Timeout)
from ._network import Client, Connection, Reference, Server, ServerStats, Subscription, Timeouts, curve_keypair
from ._agent import Agent, Container
from ._jsontext import JSONText
from ._logging import (LOG_CRITICAL, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_NOTICE, LOG_TRACE, LOG_WARNING,
                       log_to_logging, set_log_handler)
from ._tracing import Span, set_span_handler, spans_dropped

__version__ = "0.2.0"

__all__ = [
    "Server", "ServerStats", "Timeouts", "Client", "Subscription", "Reference", "Connection", "Agent", "Container",
    "JSONText",
    "Error", "InvalidArgument", "InvalidJSON", "NotFound", "Timeout", "Closed", "RemoteError", "BindError",
    "ConnectError", "InternalError", "LibraryNotFoundError", "RetryLater", "LimitReached",
    "set_log_handler", "log_to_logging", "LOG_TRACE", "LOG_DEBUG", "LOG_INFO", "LOG_NOTICE", "LOG_WARNING",
    "LOG_ERROR", "LOG_CRITICAL", "library_version", "library_path", "strerror", "set_callback_threads",
    "callback_threads", "curve_keypair", "Span", "set_span_handler", "spans_dropped",
]
