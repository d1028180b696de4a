"""Container kinds written in Python, and the agents that host them.

An Agent turns a list of Container subclasses into a hulynet_container_kind table whose callbacks
are the module-level CFUNCTYPE functions below. `kind_user` names the class and `container_user`
the instance by a key of _ffi.registry, which keeps them alive while C may call back: a class
until its agent is closed, an instance from `start` until `terminate`.
"""

from __future__ import annotations

import concurrent.futures
from ctypes import byref, c_int
from typing import Any, Dict, Iterable, List, Optional, Type

from . import _ffi, errors
from ._jsontext import JSONText
from ._base import Resource, callback_scope, in_callback, log_callback_error, logger
from ._ffi import lib

JSON = Any


class Container:
    """Base class of a container kind written in Python.

    Subclass it with a class attribute ``kind = "name"`` and implement::

        def __init__(self, uuid, options): ...             # options: {uuid?, labels?, extra?}
        def request(self, operation, data, client_id): ... # return a JSON-able value, or raise

    and optionally ``connect(self, client_id)``, ``disconnect(self, client_id)`` and
    ``terminate(self)``. ``self.uuid`` is set before ``__init__`` runs and ``self.emit(data,
    client_id=None)`` sends an event to connected clients.

    Every method runs on a library thread and must return quickly (see the README's threading
    rules): ``request`` answers synchronously with its return value; an exception becomes an error
    answer carrying ``str(exception)``. For slow work, return a ``concurrent.futures.Future``
    (``executor.submit(...)``): the answer is sent when it completes. Blocking hulynet calls
    (``Client.request`` and the like) are refused from inside these methods with InvalidArgument.
    With the class attribute ``inline_requests = True``, ``request`` runs on the agent's I/O
    thread itself (see Agent.set_inline_requests): faster, for requests answered at once.

    JSON text as it is: an answer (or an ``emit``) that is a ``hulynet.JSONText`` is sent as its
    text, byte for byte, instead of being written with ``json.dumps``; with the class attribute
    ``raw_json = True``, ``request`` receives ``data`` as a ``JSONText`` holding the caller's
    bytes instead of a parsed value (so ``return data`` echoes them unchanged).
    """

    kind: str = ""
    inline_requests: bool = False
    #: True: request() receives data as a JSONText, the caller's text as it came.
    raw_json: bool = False
    #: True: each container of the kind is served on an endpoint of its own (Agent.set_direct).
    direct: bool = False
    uuid: str = ""
    _hulynet_container: Any = None

    def __init__(self, uuid: str, options: Dict[str, Any]) -> None:
        self.uuid = uuid
        self.options = options

    def request(self, operation: str, data: JSON, client_id: Optional[str]) -> JSON:
        raise NotImplementedError(f"{type(self).__name__} does not handle operation {operation!r}")

    def connect(self, client_id: str) -> None:
        """A client connected: emit(..., client_id) reaches it until disconnect."""

    def disconnect(self, client_id: str) -> None:
        """A client disconnected."""

    def terminate(self) -> None:
        """The container stops (unused, its agent closed, or another agent owns its uuid)."""

    def emit(self, data: JSON, client_id: Optional[str] = None) -> int:
        """Sends `data` as an event to connected client `client_id`, or to every connected client (None);
        a JSONText is sent as its text (InvalidJSON if it does not parse). Returns how many clients
        it was sent to; NotFound if `client_id` is not connected."""
        handle = self._hulynet_container
        if handle is None:
            raise errors.Closed(errors.ECLOSED, f"container {self.uuid} is not running")
        delivered = c_int()
        lib.hulynet_container_emit(handle, _ffi.text(client_id, "client_id"), _ffi.dumps(data), byref(delivered))
        return delivered.value


# ---------------------------------------------------------------------------------------------
# Callbacks of the kind table
# ---------------------------------------------------------------------------------------------

def _make_instance(cls: Type[Container], uuid: str, options: Dict[str, Any], handle: Any,
                   stateless: bool = False) -> Container:
    instance = cls.__new__(cls)
    instance.uuid = uuid
    instance._hulynet_container = handle
    if stateless:
        instance._hulynet_stateless = True
    instance.__init__(uuid, options)
    return instance


def _start(kind_user: Optional[int], container: Any, uuid: Optional[bytes], options_json: Optional[bytes],
           container_user: Any) -> int:
    with callback_scope:
        try:
            cls = _ffi.registry.get(kind_user)
            if cls is None:
                return errors.ECLOSED
            options = _ffi.loads(options_json) or {}
            instance = _make_instance(cls, _ffi.decode(uuid), options, container)
            container_user[0] = _ffi.registry.add(instance)
            return errors.OK
        except errors.Error as error:
            logger.warning("container kind %s failed to start %s: %s", _kind_name(kind_user), _ffi.decode(uuid), error)
            return error.code
        except BaseException:
            log_callback_error(f"the start of a container of kind {_kind_name(kind_user)}")
            return errors.EINTERNAL


def _kind_name(kind_user: Optional[int]) -> str:
    cls = _ffi.registry.get(kind_user)
    return getattr(cls, "kind", "?")


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _fail(request: Any, message: str, status: int = errors.EREMOTE) -> None:
    try:
        lib.hulynet_request_fail_status(request, status, message.encode("utf-8", "replace"))
    except BaseException:
        log_callback_error("hulynet_request_fail_status")


def _fail_with(request: Any, error: BaseException) -> None:
    """A raised RetryLater / LimitReached reaches the caller as that status; anything else as the
    container's own error (RemoteError) with its text."""
    status = error.code if isinstance(error, (errors.RetryLater, errors.LimitReached)) else errors.EREMOTE
    _fail(request, _error_text(error), status)


def _reply(request: Any, value: JSON) -> None:
    try:
        payload = _ffi.dumps(value, "the container's answer")
    except (TypeError, errors.Error) as error:
        _fail(request, str(error))
        return
    try:
        lib.hulynet_request_reply(request, payload)
    except errors.InvalidJSON as error:  # a JSONText that does not parse: the library failed the request
        logger.warning("a container answered text that is not JSON: %s", error)
    except BaseException:
        log_callback_error("hulynet_request_reply")


def _answer_from_future(request: Any, future: "concurrent.futures.Future") -> None:
    with callback_scope:
        if future.cancelled():
            _fail(request, "the request was cancelled")
            return
        error = future.exception()
        if error is not None:
            _fail_with(request, error)
        else:
            _reply(request, future.result())


def _request(container_user: Optional[int], request: Any, operation: Optional[bytes], data_json: Optional[bytes],
             client_id: Optional[bytes]) -> None:
    with callback_scope:
        try:
            instance = _ffi.registry.get(container_user)
            if instance is None:
                _fail(request, "the container is not running")
                return
            try:
                data = JSONText(_ffi.text_of(data_json)) if instance.raw_json else _ffi.loads(data_json)
                result = instance.request(_ffi.decode(operation), data,
                                          client_id.decode("utf-8", "replace") if client_id is not None else None)
            except BaseException as error:
                logger.debug("container %s: request %r raised %r", instance.uuid, operation, error)
                _fail_with(request, error)
                return
            if isinstance(result, concurrent.futures.Future):
                result.add_done_callback(lambda done: _answer_from_future(request, done))
                return
            _reply(request, result)
        except BaseException:
            log_callback_error("a container request")
            _fail(request, "internal error in the Python container")


def _client_event(method: str):
    def callback(container_user: Optional[int], client_id: Optional[bytes]) -> None:
        with callback_scope:
            instance = _ffi.registry.get(container_user)
            if instance is None:
                return
            try:
                getattr(instance, method)(_ffi.decode(client_id))
            except BaseException:
                log_callback_error(f"{type(instance).__name__}.{method}")
    return callback


def _terminate(container_user: Optional[int]) -> None:
    with callback_scope:
        instance = _ffi.registry.pop(container_user)
        if instance is None:
            return
        try:
            instance.terminate()
        except BaseException:
            log_callback_error(f"{type(instance).__name__}.terminate")
        finally:
            instance._hulynet_container = None


_start_callback = _ffi.START_FN(_start)
_request_callback = _ffi.REQUEST_FN(_request)
_connect_callback = _ffi.CLIENT_FN(_client_event("connect"))
_disconnect_callback = _ffi.CLIENT_FN(_client_event("disconnect"))
_terminate_callback = _ffi.TERMINATE_FN(_terminate)


# ---------------------------------------------------------------------------------------------
# Agent
# ---------------------------------------------------------------------------------------------

class Agent(Resource):
    """An agent hosting the container kinds of `container_classes` (Container subclasses). Serve it
    with Client.serve_agent (an endpoint of its own) or Client.register_agent. close() stops its
    containers (calling their terminate) and unregisters it."""

    _what = "agent"
    _live_group = "Agent"

    def __init__(self, container_classes: Iterable[Type[Container]], uuid: Optional[str] = None) -> None:
        super().__init__()
        classes: List[Type[Container]] = list(container_classes)
        self._classes: Dict[str, Type[Container]] = {}
        for cls in classes:
            kind = getattr(cls, "kind", None)
            if not isinstance(cls, type) or not isinstance(kind, str) or not kind:
                raise TypeError(f"{cls!r} is not a container class with a non-empty str attribute `kind`")
            if kind in self._classes:
                raise errors.InvalidArgument(errors.EINVAL, f"kind {kind} appears twice")
            self._classes[kind] = cls
        names = [_ffi.required_text(cls.kind, "kind") for cls in classes]
        uuid_arg = _ffi.text(uuid, "uuid")
        self._kind_keys = [_ffi.registry.add(cls) for cls in classes]
        table = (_ffi.ContainerKindC * max(1, len(classes)))()
        for entry, name, key in zip(table, names, self._kind_keys):
            entry.size = _ffi.struct_size(_ffi.ContainerKindC)
            entry.kind = name
            entry.kind_user = key
            entry.start = _start_callback
            entry.request = _request_callback
            entry.connect = _connect_callback
            entry.disconnect = _disconnect_callback
            entry.terminate = _terminate_callback
        handle = _ffi.AgentP()
        try:
            lib.hulynet_agent_create(uuid_arg, table, len(classes), byref(handle))
        except BaseException:
            self._forget_kinds()
            raise
        self._opened(handle)
        self.uuid: str = _ffi.decode(lib.hulynet_agent_uuid(handle))
        for cls in classes:
            if getattr(cls, "inline_requests", False):
                self.set_inline_requests(cls.kind)
            if getattr(cls, "direct", False):
                self.set_direct(cls.kind)

    def set_inline_requests(self, kind: str, inline: bool = True) -> None:
        """Runs `kind`'s request() on the agent's I/O thread from the next request on (or, with
        False, on a thread of its own, the default). Faster for requests answered at once; such a
        request() must return quickly, since the client's other traffic waits meanwhile. A
        Container class can ask for it with the class attribute `inline_requests = True`."""
        lib.hulynet_agent_set_request_mode(self._live_handle(), _ffi.required_text(kind, "kind"),
                                           _ffi.REQUESTS_INLINE if inline else _ffi.REQUESTS_ON_CALLBACK_THREAD)

    def set_direct(self, kind: str, direct: bool = True) -> None:
        """Serves `kind`'s containers started from now on each on an endpoint of its own, which
        clients connect to directly rather than through the agent (False: routed, the default).
        Needs an agent served with Client.serve_agent. A Container class can ask for it with the
        class attribute `direct = True`."""
        lib.hulynet_agent_set_direct(self._live_handle(), _ffi.required_text(kind, "kind"), 1 if direct else 0)

    @property
    def kinds(self) -> List[str]:
        return list(self._classes)

    def add_stateless(self, kind: str, uuid: str, options: Optional[Dict[str, Any]] = None) -> Container:
        """Adds a pre-existing ("stateless", highly available) container of `kind` under a fixed uuid;
        call before serving the agent. Returns the instance."""
        handle = self._live_handle()
        cls = self._classes.get(kind)
        if cls is None:
            raise errors.NotFound(errors.ENOTFOUND, f"the agent has no container kind {kind}")
        instance = _make_instance(cls, uuid, dict(options or {}, uuid=uuid), None, stateless=True)
        key = _ffi.registry.add(instance)
        try:
            lib.hulynet_agent_add_stateless(handle, _ffi.required_text(uuid, "uuid"),
                                            _ffi.required_text(kind, "kind"), key)
        except BaseException:
            _ffi.registry.pop(key)
            raise
        container = lib.hulynet_agent_stateless_container(handle, _ffi.required_text(uuid, "uuid"))
        instance._hulynet_container = container if container else None
        return instance

    def _forget_kinds(self) -> None:
        for key in self._kind_keys:
            _ffi.registry.pop(key)
        self._kind_keys = []

    def _destroy(self, handle: Any) -> None:
        inside = in_callback()
        lib.hulynet_agent_destroy(handle)
        # Outside a callback the destroy waited for every container to terminate; inside one it
        # only started that, so the classes stay registered for the containers still stopping.
        if not inside:
            self._forget_kinds()

    def __repr__(self) -> str:
        return f"<hulynet.Agent {self.uuid} kinds={self.kinds}{' closed' if self.closed else ''}>"
