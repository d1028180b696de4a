"""Servers, clients, container references and connections: thin wrappers over the C handles."""

from __future__ import annotations

import asyncio
import ctypes
import json
import threading
import weakref
from ctypes import byref, c_uint64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import _ffi, errors
from ._base import Resource, callback_scope, log_callback_error
from ._ffi import lib

if TYPE_CHECKING:
    from ._agent import Agent

JSON = Any

# ---------------------------------------------------------------------------------------------
# Plain data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """The network's timeouts, in seconds; None leaves the protocol's default (shown)."""

    alive: Optional[float] = None             # a silent client (and its agents) is dropped: 3 s
    unused_container: Optional[float] = None  # an unreferenced container stops: 5 s
    ping_interval: Optional[float] = None     # how often clients ping: 1 s
    request: Optional[float] = None           # the longest any request waits: 30 s
    tick: Optional[float] = None              # how often timers are checked: 0.1 s

    def _to_c(self) -> _ffi.TimeoutsC:
        return _ffi.TimeoutsC(_ffi.struct_size(_ffi.TimeoutsC),
                              *(_ffi.milliseconds(getattr(self, name), f"timeouts.{name}")
                                for name in ("alive", "unused_container", "ping_interval", "request", "tick")))


TimeoutsLike = Union[Timeouts, Mapping[str, Optional[float]], None]


def _timeouts(value: TimeoutsLike) -> Optional[_ffi.TimeoutsC]:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = Timeouts(**value)
    if not isinstance(value, Timeouts):
        raise TypeError(f"timeouts must be a hulynet.Timeouts, a dict or None, not {type(value).__name__}")
    return value._to_c()


def _timeouts_arg(timeouts: TimeoutsLike) -> Any:
    """A `const hulynet_timeouts *` argument (NULL for None)."""
    value = _timeouts(timeouts)
    return byref(value) if value is not None else None


@dataclass(frozen=True)
class ServerStats:
    clients: int
    agents: int
    containers: int
    requests: int   # requests received since start
    malformed: int  # malformed messages received


def _port(port: int, name: str = "port", lowest: int = 0) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{name} must be an int, not {type(port).__name__}")
    # Checked here: ctypes would silently wrap an int beyond the C int's range.
    if not lowest <= port <= 65535:
        raise errors.InvalidArgument(errors.EINVAL, f"{name} {port} is out of range ({lowest} to 65535)")
    return port


# ---------------------------------------------------------------------------------------------
# Callbacks from C. Module-level, so they live as long as the library can call them; `user` is a
# key of _ffi.registry naming what the call is for.
# ---------------------------------------------------------------------------------------------

def _call_handler(user: Optional[int], what: str, arguments: Callable[[], tuple]) -> None:
    """Calls the handler registered under `user` with arguments() (converted inside the guard);
    what it raises is logged, never passed to C."""
    with callback_scope:
        handler = _ffi.registry.get(user)
        if handler is None:
            return
        try:
            handler(*arguments())
        except BaseException:
            log_callback_error(f"{what} {handler!r}")


def _deliver_event(user: Optional[int], data: Optional[bytes]) -> None:
    _call_handler(user, "event handler", lambda: (_ffi.loads(data),))


def _deliver_event_text(user: Optional[int], data: Optional[bytes]) -> None:
    _call_handler(user, "event handler", lambda: (_ffi.text_of(data),))


def _deliver_moved(user: Optional[int], uuid: Optional[bytes], endpoint: Optional[bytes]) -> None:
    _call_handler(user, "moved handler", lambda: (_ffi.decode(uuid), _ffi.decode(endpoint)))


def _forget_handler(user: Optional[int]) -> None:
    """The library's destroy notification: it will not call this handler again."""
    _ffi.registry.pop(user)


_event_callback = _ffi.EVENT_FN(_deliver_event)
_event_text_callback = _ffi.EVENT_FN(_deliver_event_text)
_moved_callback = _ffi.MOVED_FN(_deliver_moved)
_destroy_callback = _ffi.DESTROY_FN(_forget_handler)


class _HandlerSlot:
    """One handler that C calls back with its registry key as `user`: kept in the registry until
    the library's destroy notification says it calls it no more; replaced under a lock (a
    handler may replace itself from inside a call)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.fn: Optional[Callable[..., Any]] = None
        self._key: Optional[int] = None
        self._lock = threading.RLock()

    def set(self, fn: Optional[Callable[..., Any]], install: Callable[[Optional[int]], Any]) -> None:
        """Registers `fn` and calls install(key), which hands C its callback with `key` as the
        user (None: no callback) and the destroy notification; the library drops the previous
        one through that notification."""
        if fn is not None and not callable(fn):
            raise TypeError(f"the {self.what} must be callable or None")
        with self._lock:
            key = _ffi.registry.add(fn) if fn is not None else None
            try:
                install(key)
            except BaseException:
                _ffi.registry.pop(key)  # not taken: no destroy notification comes
                raise
            self._key, self.fn = key, fn

    def forget(self) -> None:
        """Its C handle is destroyed: the library has sent (or sends) the destroy notification."""
        self._key, self.fn = None, None


# What a JSON answer becomes: a Python value (the object API) or its text as it came (the text API).
Convert = Callable[[Optional[bytes]], Any]


def _settle(future: asyncio.Future, status: int, payload: Optional[bytes], convert: Convert) -> None:
    """On the event loop: completes a Future with a JSON result or the error for `status`."""
    if future.done():  # cancelled while the library worked
        return
    if status != errors.OK:
        future.set_exception(errors.error_for(status, _ffi.decode(payload)))
        return
    try:
        future.set_result(convert(payload))
    except ValueError as error:
        future.set_exception(errors.InvalidJSON(errors.EJSON, f"the answer is not JSON: {error}"))


def _complete_result(user: Optional[int], status: int, payload: Optional[bytes]) -> None:
    with callback_scope:
        entry = _ffi.registry.pop(user)
        if entry is None:
            return
        loop, future, convert = entry
        try:
            loop.call_soon_threadsafe(_settle, future, status, payload, convert)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass
        except BaseException:
            log_callback_error("an asynchronous result")


_result_callback = _ffi.RESULT_FN(_complete_result)


def _settle_reference(future: asyncio.Future, reference: Optional["Reference"], status: int, message: str) -> None:
    if future.done():
        if reference is not None:
            reference.close()
        return
    if reference is None:
        future.set_exception(errors.error_for(status, message))
    else:
        future.set_result(reference)


def _complete_reference(user: Optional[int], status: int, handle: Any, error: Optional[bytes]) -> None:
    with callback_scope:
        entry = _ffi.registry.pop(user)
        if entry is None:
            if status == errors.OK and handle:
                lib.hulynet_reference_destroy(handle)
            return
        loop, future, client = entry
        reference: Optional[Reference] = None
        message = _ffi.decode(error)
        try:
            if status == errors.OK:
                reference = Reference._adopt(client, handle)
                if reference is None:
                    status, message = errors.ECLOSED, "the client was closed before the get completed"
        except BaseException:
            log_callback_error("get_async completion")
            status, message = errors.EINTERNAL, "cannot wrap the reference"
        try:
            loop.call_soon_threadsafe(_settle_reference, future, reference, status, message)
        except RuntimeError:  # the loop is closed
            if reference is not None:
                reference.close()
        except BaseException:
            log_callback_error("get_async completion")


_reference_callback = _ffi.REFERENCE_FN(_complete_reference)


def _start_async(call: Callable[[Any, int], Any], entry_rest: tuple = ()) -> asyncio.Future:
    """Starts an asynchronous C call (`call(callback_key)`) whose completion settles the returned
    Future on the running loop."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    key = _ffi.registry.add((loop, future) + entry_rest)
    try:
        call(key)
    except BaseException:
        _ffi.registry.pop(key)
        raise
    return future


def _text_result(call: Callable[[ctypes.c_void_p], Any], convert: Convert = _ffi.loads) -> JSON:
    """Runs a C call with a `char **json_out` and returns the JSON result, converted (by default
    to a Python value)."""
    out = _ffi.out_text()
    call(byref(out))
    return convert(_ffi.take_text(out))


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------

def curve_keypair() -> "tuple[str, str]":
    """A fresh CURVE key pair, (public, secret), each Z85 text of 40 characters."""
    public, secret = ctypes.create_string_buffer(41), ctypes.create_string_buffer(41)
    lib.hulynet_curve_keypair(public, secret)
    return public.value.decode("ascii"), secret.value.decode("ascii")


class Server(Resource):
    """A network coordinator listening on host:port (port 0 picks a free one; "0.0.0.0" or "*" for
    every address)."""

    _what = "server"
    _live_group = "Server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, timeouts: TimeoutsLike = None, *,
                 etcd: Optional[str] = None, etcd_key: Optional[str] = None, lease_ttl: Optional[float] = None,
                 advertise: Optional[str] = None, secret_key: Optional[str] = None,
                 allow_list: Optional[str] = None) -> None:
        """With `etcd` ("http://host:port[,...]"), one of several coordinators that stand in for each
        other: it campaigns for leadership through etcd and serves on host:port (a fixed port) only
        while it leads (see `role`, `health()` and docs/HA.md); `lease_ttl` in whole seconds.
        With `secret_key` (Z85), it serves with CURVE, admitting the keys of `allow_list` (a file
        of "KEY NAME" lines) or, without one, any client that knows its public key."""
        super().__init__()
        self.host = host
        handle = _ffi.ServerP()
        security = _ffi.security(secret_key, None, allow_list)
        if security is not None and secret_key is None:
            raise errors.InvalidArgument(errors.EINVAL, "allow_list needs secret_key")
        if etcd is None:
            if etcd_key is not None or lease_ttl is not None or advertise is not None:
                raise errors.InvalidArgument(errors.EINVAL, "etcd_key, lease_ttl and advertise need etcd")
            lib.hulynet_server_start_with(_ffi.required_text(host, "host"), _port(port), _timeouts_arg(timeouts),
                                          None, byref(security) if security is not None else None, byref(handle))
        else:
            options = _ffi.ElectionOptionsC()
            options.size = ctypes.sizeof(options)
            options.etcd = _ffi.required_text(etcd, "etcd")
            options.key = None if etcd_key is None else _ffi.required_text(etcd_key, "etcd_key")
            options.lease_ttl_ms = 0 if lease_ttl is None else _ffi.milliseconds(lease_ttl, "lease_ttl")
            options.advertise = None if advertise is None else _ffi.required_text(advertise, "advertise")
            lib.hulynet_server_start_with(_ffi.required_text(host, "host"), _port(port), _timeouts_arg(timeouts),
                                          byref(options), byref(security) if security is not None else None,
                                          byref(handle))
        self._opened(handle)
        self.port: int = lib.hulynet_server_port(handle)

    @property
    def role(self) -> str:
        """"leader" (a coordinator on its own always is), "standby" or "stopped"."""
        return {_ffi.ROLE_STANDBY: "standby", _ffi.ROLE_LEADER: "leader", _ffi.ROLE_STOPPED: "stopped"}[
            lib.hulynet_server_role(self._live_handle())]

    def health(self) -> dict:
        """For health checks: {"status": "serving" | "standby" | "stopped", "role": ..., ...}."""
        out = ctypes.c_void_p()
        lib.hulynet_server_health(self._live_handle(), byref(out))
        return _ffi.loads(_ffi.take_text(out))

    def stats(self) -> ServerStats:
        out = _ffi.ServerStatsC()
        lib.hulynet_server_stats_get(self._live_handle(), byref(out))
        return ServerStats(out.clients, out.agents, out.containers, out.requests, out.malformed)

    def metrics(self) -> str:
        """The server's metrics in the Prometheus text format (docs/OBSERVABILITY.md), for a
        program that serves them over its own HTTP server."""
        out = _ffi.out_text()
        lib.hulynet_server_metrics(self._live_handle(), byref(out))
        return _ffi.decode(_ffi.take_text(out))

    def serve_metrics(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serves GET /metrics and GET /health over HTTP on host:port (0 picks a free port) until
        the server closes; returns the port."""
        bound = ctypes.c_int(0)
        lib.hulynet_server_serve_metrics(self._live_handle(), _ffi.required_text(host, "host"), _port(port), byref(bound))
        return bound.value

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _destroy(self, handle: Any) -> None:
        lib.hulynet_server_destroy(handle)

    def __repr__(self) -> str:
        return f"<hulynet.Server {self.host}:{self.port}{' closed' if self.closed else ''}>"


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------

class Subscription:
    """A network listener added with Client.add_listener; remove() stops it (idempotent; a closed
    client has removed it already)."""

    def __init__(self, client: "Client", subscription: int, key: int) -> None:
        self._client = client
        self.id = subscription
        self._key: Optional[int] = key
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._key is not None and not self._client.closed

    def remove(self) -> None:
        with self._lock:
            key, self._key = self._key, None
        if key is None:
            return
        # The library's destroy notification drops the function (here, or when the client closed).
        handle = self._client._handle
        if handle is not None:
            lib.hulynet_client_remove_listener(handle, c_uint64(self.id))

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class Client(Resource):
    """A connection to the network coordinator at host:port. It connects in the background:
    wait() (or wait_async()) until the coordinator has answered."""

    _what = "client"
    _live_group = "Client"

    def __init__(self, host: str, port: Optional[int] = None, timeouts: TimeoutsLike = None, *,
                 server_key: Optional[str] = None, secret_key: Optional[str] = None) -> None:
        """`Client(host, port)`, or `Client("host:port,host:port,...")`: whichever of several
        coordinators serves (see Server's `etcd`), followed when another takes over. With
        `server_key` (the coordinator's public key, Z85) it connects with CURVE, as `secret_key`
        (default: a key pair made for the connection)."""
        super().__init__()
        self.host = host
        self.port = port
        self._children: "weakref.WeakSet[Resource]" = weakref.WeakSet()
        self._children_lock = threading.Lock()
        handle = _ffi.ClientP()
        security = _ffi.security(secret_key, server_key, None)
        if security is not None and server_key is None:
            raise errors.InvalidArgument(errors.EINVAL, "secret_key needs server_key")
        if port is None or security is not None:
            network = host if port is None else f"{host}:{_port(port, lowest=1)}"
            lib.hulynet_client_connect_with(_ffi.required_text(network, "network"), _timeouts_arg(timeouts),
                                            byref(security) if security is not None else None, byref(handle))
        else:
            lib.hulynet_client_connect(_ffi.required_text(host, "host"), _port(port, lowest=1),
                                       _timeouts_arg(timeouts), byref(handle))
        self._opened(handle)
        self.id: str = _ffi.decode(lib.hulynet_client_id(handle))

    # -- children: references and connections the client frees when it is destroyed

    def _adopt_child(self, child: Resource) -> bool:
        with self._children_lock:
            if self._handle is None:
                return False
            self._children.add(child)
            return True

    def _destroy(self, handle: Any) -> None:
        with self._children_lock:
            children = list(self._children)
            self._children = weakref.WeakSet()
        # The client first: it releases its references and closes its connections (answering
        # HULYNET_ECLOSED on them from then on); then the children's handles are freed, so that
        # closing the client closes everything it made.
        lib.hulynet_client_destroy(handle)
        for child in sorted(children, key=lambda c: not isinstance(c, Connection)):
            child.close()

    # -- waiting for the coordinator

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until the coordinator has answered hello (Timeout otherwise)."""
        lib.hulynet_client_wait(self._live_handle(), _ffi.milliseconds(timeout))

    async def wait_async(self, timeout: Optional[float] = None) -> None:
        """wait() without blocking the event loop (the C call waits on a worker thread)."""
        handle = self._live_handle()
        ms = _ffi.milliseconds(timeout)
        await asyncio.get_running_loop().run_in_executor(None, lib.hulynet_client_wait, handle, ms)

    # -- the network

    def agents(self, timeout: Optional[float] = None) -> List[dict]:
        """The registered agents: [{agentId, endpoint, kinds, containers}]."""
        handle, ms = self._live_handle(), _ffi.milliseconds(timeout)
        return _text_result(lambda out: lib.hulynet_client_agents(handle, ms, out))

    def kinds(self, timeout: Optional[float] = None) -> List[str]:
        """The container kinds the agents offer."""
        handle, ms = self._live_handle(), _ffi.milliseconds(timeout)
        return _text_result(lambda out: lib.hulynet_client_kinds(handle, ms, out))

    def list(self, kind: Optional[str] = None, timeout: Optional[float] = None) -> List[dict]:
        """Container records ({agentId, uuid, kind, endpoint, lastVisit, labels?, extra?}), of `kind` or all."""
        handle, ms, kind_arg = self._live_handle(), _ffi.milliseconds(timeout), _ffi.text(kind, "kind")
        return _text_result(lambda out: lib.hulynet_client_list(handle, kind_arg, ms, out))

    @staticmethod
    def _get_options(uuid: Optional[str], labels: Optional[Sequence[str]], extra: Optional[Mapping[str, Any]]) -> Optional[bytes]:
        options: Dict[str, Any] = {}
        if uuid is not None:
            options["uuid"] = uuid
        if labels is not None:
            if isinstance(labels, str):
                raise TypeError("labels must be a sequence of str, not a str")
            options["labels"] = list(labels)
        if extra is not None:
            options["extra"] = dict(extra)
        return _ffi.dumps(options, "get options") if options else None

    def get(self, kind: str, uuid: Optional[str] = None, labels: Optional[Sequence[str]] = None,
            extra: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> "Reference":
        """Gets (starting it if needed) a container of `kind`: the one with `uuid`, or one whose labels
        include `labels`. The Reference holds it until released or closed."""
        handle = self._live_handle()
        kind_arg = _ffi.required_text(kind, "kind")
        options = self._get_options(uuid, labels, extra)
        out = _ffi.ReferenceP()
        lib.hulynet_client_get(handle, kind_arg, options, _ffi.milliseconds(timeout), byref(out))
        reference = Reference._adopt(self, out)
        if reference is None:
            raise errors.Closed(errors.ECLOSED, "the client was closed during get")
        return reference

    async def get_async(self, kind: str, uuid: Optional[str] = None, labels: Optional[Sequence[str]] = None,
                        extra: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> "Reference":
        """get() without blocking: hulynet_client_get_async, completed on the running loop."""
        handle = self._live_handle()
        kind_arg = _ffi.required_text(kind, "kind")
        options = self._get_options(uuid, labels, extra)
        ms = _ffi.milliseconds(timeout)
        future = _start_async(
            lambda key: lib.hulynet_client_get_async(handle, kind_arg, options, ms, _reference_callback, key),
            (self,))
        return await future

    def request(self, uuid: str, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """A request to container `uuid` through the coordinator; returns its answer."""
        return self._request(uuid, operation, _ffi.dumps(data), timeout, _ffi.loads)

    async def request_async(self, uuid: str, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """request() without blocking: hulynet_client_request_async, completed on the running loop."""
        return await self._request_async(uuid, operation, _ffi.dumps(data), timeout, _ffi.loads)

    def request_text(self, uuid: str, operation: str, text: Optional[str] = None,
                     timeout: Optional[float] = None) -> str:
        """request() with JSON text: `text` (None: null) is sent as it is, and the answer is returned
        as the text the container wrote, byte for byte. InvalidJSON if `text` does not parse."""
        return self._request(uuid, operation, _ffi.json_text(text), timeout, _ffi.text_of)

    async def request_text_async(self, uuid: str, operation: str, text: Optional[str] = None,
                                 timeout: Optional[float] = None) -> str:
        """request_text() without blocking."""
        return await self._request_async(uuid, operation, _ffi.json_text(text), timeout, _ffi.text_of)

    def _request(self, uuid: str, operation: str, payload: Optional[bytes], timeout: Optional[float],
                 convert: Convert) -> Any:
        handle = self._live_handle()
        args = (_ffi.required_text(uuid, "uuid"), _ffi.required_text(operation, "operation"), payload,
                _ffi.milliseconds(timeout))
        return _text_result(lambda out: lib.hulynet_client_request(handle, *args, out), convert)

    def _request_async(self, uuid: str, operation: str, payload: Optional[bytes], timeout: Optional[float],
                       convert: Convert) -> asyncio.Future:
        handle = self._live_handle()
        args = (_ffi.required_text(uuid, "uuid"), _ffi.required_text(operation, "operation"), payload,
                _ffi.milliseconds(timeout))
        return _start_async(
            lambda key: lib.hulynet_client_request_async(handle, *args, _result_callback, key), (convert,))

    # -- listening to the network's changes

    def add_listener(self, fn: Callable[[Any], Any], text: bool = False) -> Subscription:
        """Calls fn(event) with every network change, a dict {agents: [...], containers: [...]} (with
        `text`: its JSON text, a str, as the library wrote it), on a library thread. Returns a
        Subscription to remove()."""
        if not callable(fn):
            raise TypeError("the listener must be callable")
        handle = self._live_handle()
        key = _ffi.registry.add(fn)
        subscription = c_uint64()
        try:
            lib.hulynet_client_add_listener_v2(handle, _event_text_callback if text else _event_callback, key,
                                               _destroy_callback, byref(subscription))
        except BaseException:
            _ffi.registry.pop(key)
            raise
        return Subscription(self, subscription.value, key)

    # -- agents

    def serve_agent(self, agent: "Agent", advertised_host: str = "127.0.0.1", port: int = 0,
                    timeout: Optional[float] = None) -> None:
        """Opens the agent's endpoint on 0.0.0.0:port (0 picks one), advertised as advertised_host, and
        registers it with the network (again after every coordinator restart)."""
        lib.hulynet_client_serve_agent(self._live_handle(), agent._live_handle(),
                                       _ffi.required_text(advertised_host, "advertised_host"), _port(port),
                                       _ffi.milliseconds(timeout))

    def register_agent(self, agent: "Agent", timeout: Optional[float] = None) -> None:
        """Registers the agent without an endpoint: its containers are reached through the coordinator."""
        lib.hulynet_client_register_agent(self._live_handle(), agent._live_handle(), _ffi.milliseconds(timeout))

    def __repr__(self) -> str:
        return f"<hulynet.Client {self.id} to {self.host}:{self.port}{' closed' if self.closed else ''}>"


# ---------------------------------------------------------------------------------------------
# References and connections
# ---------------------------------------------------------------------------------------------

class Reference(Resource):
    """A client's hold on a container (from Client.get). close() releases it without waiting.

    It follows its container: when the container's agent dies or leaves (or after a coordinator
    restart), the library gets it again on a live agent (the same uuid for a get by uuid; the same
    kind, labels and extra otherwise). Requests made meanwhile wait and go again within their own
    timeout; connections reopen where the container went and keep their event handlers; uuid and
    endpoint give the new values; on_moved tells the holder."""

    _what = "reference"
    _live_group = "Reference"

    def __init__(self) -> None:  # made by Client.get / get_async only
        super().__init__()
        self.client: Optional[Client] = None
        self._uuid = ""
        self._endpoint = ""
        self._moved = _HandlerSlot("moved handler")

    @classmethod
    def _adopt(cls, client: Client, handle: Any) -> Optional["Reference"]:
        """Wraps a new reference handle of `client` (None, with the handle freed, if the client is closed)."""
        reference = cls()
        reference.client = client
        reference._uuid = _ffi.decode(lib.hulynet_reference_uuid(handle))
        reference._endpoint = _ffi.decode(lib.hulynet_reference_endpoint(handle))
        reference._opened(handle)
        if not client._adopt_child(reference):
            reference.close()
            return None
        return reference

    def _current(self, read: Callable[[Any], Optional[bytes]], cached: str) -> str:
        """An accessor's value now (the last one read, once closed)."""
        handle = self._handle
        value = read(handle) if handle is not None else None
        if value is not None:
            setattr(self, cached, _ffi.decode(value))
        return getattr(self, cached)

    @property
    def uuid(self) -> str:
        """The container's uuid as it is now: after a move, a new one unless it was got by uuid."""
        return self._current(lib.hulynet_reference_uuid, "_uuid")

    @property
    def endpoint(self) -> str:
        """The container's endpoint reference (JSON text) as it is now: it changes when the container moves."""
        return self._current(lib.hulynet_reference_endpoint, "_endpoint")

    @property
    def on_moved(self) -> Optional[Callable[[str, str], Any]]:
        """The function called with (uuid, endpoint) each time the container moved, on a library thread
        (keep it short; no blocking calls); None stops it. Once set, the previous one is not called again."""
        return self._moved.fn

    @on_moved.setter
    def on_moved(self, fn: Optional[Callable[[str, str], Any]]) -> None:
        self.set_moved_handler(fn)

    def set_moved_handler(self, fn: Optional[Callable[[str, str], Any]]) -> None:
        self._moved.set(fn, lambda key: lib.hulynet_reference_set_moved_handler_v2(
            self._live_handle(), _moved_callback if key is not None else _ffi.NULL_MOVED_FN, key,
            _destroy_callback if key is not None else _ffi.NULL_DESTROY_FN))

    @property
    def endpoint_info(self) -> Optional[dict]:
        """The endpoint reference parsed: {host, port, kind, agentId, uuid?} (None if it is not JSON)."""
        try:
            return json.loads(self.endpoint)
        except ValueError:
            return None

    def request(self, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """A request to the container through the coordinator."""
        return self._request(operation, _ffi.dumps(data), timeout, _ffi.loads)

    async def request_async(self, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """request() without blocking: hulynet_reference_request_async, completed on the running loop
        (it follows the container when it moves, as request() does)."""
        return await self._request_async(operation, _ffi.dumps(data), timeout, _ffi.loads)

    def request_text(self, operation: str, text: Optional[str] = None, timeout: Optional[float] = None) -> str:
        """request() with JSON text: `text` (None: null) is sent as it is, and the answer is returned
        as the text the container wrote, byte for byte. InvalidJSON if `text` does not parse."""
        return self._request(operation, _ffi.json_text(text), timeout, _ffi.text_of)

    async def request_text_async(self, operation: str, text: Optional[str] = None,
                                 timeout: Optional[float] = None) -> str:
        """request_text() without blocking."""
        return await self._request_async(operation, _ffi.json_text(text), timeout, _ffi.text_of)

    def _request(self, operation: str, payload: Optional[bytes], timeout: Optional[float], convert: Convert) -> Any:
        handle = self._live_handle()
        args = (_ffi.required_text(operation, "operation"), payload, _ffi.milliseconds(timeout))
        return _text_result(lambda out: lib.hulynet_reference_request(handle, *args, out), convert)

    def _request_async(self, operation: str, payload: Optional[bytes], timeout: Optional[float],
                       convert: Convert) -> asyncio.Future:
        handle = self._live_handle()
        args = (_ffi.required_text(operation, "operation"), payload, _ffi.milliseconds(timeout))
        return _start_async(
            lambda key: lib.hulynet_reference_request_async(handle, *args, _result_callback, key), (convert,))

    def connect(self, timeout: Optional[float] = None) -> "Connection":
        """Opens a connection to the container (routed through its agent, or direct): requests and the
        events the container sends to this client."""
        handle = self._live_handle()
        out = _ffi.ConnectionP()
        lib.hulynet_reference_connect(handle, _ffi.milliseconds(timeout), byref(out))
        connection = Connection._adopt(self.client, out, self)
        if connection is None:
            raise errors.Closed(errors.ECLOSED, "the client was closed during connect")
        return connection

    def release(self, timeout: Optional[float] = None) -> None:
        """Gives the container back and waits for the coordinator's answer (the handle stays open:
        close() it)."""
        lib.hulynet_reference_release(self._live_handle(), _ffi.milliseconds(timeout))

    def _destroy(self, handle: Any) -> None:
        lib.hulynet_reference_destroy(handle)
        self._moved.forget()

    def __repr__(self) -> str:
        return f"<hulynet.Reference {self.uuid}{' closed' if self.closed else ''}>"


class Connection(Resource):
    """A connection to a container (from Reference.connect): requests, and the container's events
    for this client, delivered to on_event on a library thread."""

    _what = "connection"
    _live_group = "Connection"

    def __init__(self) -> None:  # made by Reference.connect only
        super().__init__()
        self.client: Optional[Client] = None
        self._reference: Optional["weakref.ref[Reference]"] = None
        self._uuid = ""
        self._events = _HandlerSlot("event handler")  # early events run inside set: a handler may replace itself

    @classmethod
    def _adopt(cls, client: Client, handle: Any, reference: Reference) -> Optional["Connection"]:
        connection = cls()
        connection.client = client
        connection._reference = weakref.ref(reference)
        connection._uuid = reference.uuid
        connection._opened(handle)
        if not client._adopt_child(connection):
            connection.close()
            return None
        return connection

    @property
    def uuid(self) -> str:
        """The container's uuid: its reference's, which changes when the container moves (unless it
        was got by uuid)."""
        reference = self._reference() if self._reference is not None else None
        if reference is not None and not reference.closed:
            self._uuid = reference.uuid
        return self._uuid

    @property
    def on_event(self) -> Optional[Callable[[JSON], Any]]:
        """The function called with each event (a Python value); None stops delivery. Events that came
        before the first handler was set are delivered to it. It stays when the container moves.
        (set_event_handler(fn, text=True) has events delivered as JSON text instead.)"""
        return self._events.fn

    @on_event.setter
    def on_event(self, fn: Optional[Callable[[JSON], Any]]) -> None:
        self.set_event_handler(fn)

    def set_event_handler(self, fn: Optional[Callable[[Any], Any]], text: bool = False) -> None:
        """Sets on_event. With `text`, fn receives each event as the JSON text the container wrote,
        a str, byte for byte, rather than as a Python value."""
        callback = _event_text_callback if text else _event_callback
        self._events.set(fn, lambda key: lib.hulynet_connection_set_event_handler_v2(
            self._live_handle(), callback if key is not None else _ffi.NULL_EVENT_FN, key,
            _destroy_callback if key is not None else _ffi.NULL_DESTROY_FN))

    def request(self, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """A request to the container over this connection; returns its answer."""
        return self._request(operation, _ffi.dumps(data), timeout, _ffi.loads)

    async def request_async(self, operation: str, data: JSON = None, timeout: Optional[float] = None) -> JSON:
        """request() without blocking: hulynet_connection_request_async, completed on the running loop."""
        return await self._request_async(operation, _ffi.dumps(data), timeout, _ffi.loads)

    def request_text(self, operation: str, text: Optional[str] = None, timeout: Optional[float] = None) -> str:
        """request() with JSON text: `text` (None: null) is sent as it is, and the answer is returned
        as the text the container wrote, byte for byte. InvalidJSON if `text` does not parse."""
        return self._request(operation, _ffi.json_text(text), timeout, _ffi.text_of)

    async def request_text_async(self, operation: str, text: Optional[str] = None,
                                 timeout: Optional[float] = None) -> str:
        """request_text() without blocking."""
        return await self._request_async(operation, _ffi.json_text(text), timeout, _ffi.text_of)

    def _request(self, operation: str, payload: Optional[bytes], timeout: Optional[float], convert: Convert) -> Any:
        handle = self._live_handle()
        args = (_ffi.required_text(operation, "operation"), payload, _ffi.milliseconds(timeout))
        return _text_result(lambda out: lib.hulynet_connection_request(handle, *args, out), convert)

    def _request_async(self, operation: str, payload: Optional[bytes], timeout: Optional[float],
                       convert: Convert) -> asyncio.Future:
        handle = self._live_handle()
        args = (_ffi.required_text(operation, "operation"), payload, _ffi.milliseconds(timeout))
        return _start_async(
            lambda key: lib.hulynet_connection_request_async(handle, *args, _result_callback, key), (convert,))

    def _destroy(self, handle: Any) -> None:
        lib.hulynet_connection_destroy(handle)
        self._events.forget()

    def __repr__(self) -> str:
        return f"<hulynet.Connection to {self.uuid}{' closed' if self.closed else ''}>"
