"""hulynet.set_span_handler: the spans of a coordinator and an agent in this process, the agent's
request span the child of the coordinator's across the wire, delivered as Span objects."""

import threading

import pytest

import hulynet
from helpers import TIMEOUTS, Echo, wait_for


def test_spans_of_a_request_are_linked():
    spans = []
    lock = threading.Lock()
    threads = set()

    def collect(span):
        with lock:
            spans.append(span)
            threads.add(threading.current_thread().name)

    def named(name):
        with lock:
            return [span for span in spans if span.name == name]

    # Before the server and clients: each reads the process's tracer once, when made.
    hulynet.set_span_handler(collect)
    try:
        with hulynet.Server("127.0.0.1", 0, timeouts=TIMEOUTS) as server, \
             hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as host, \
             hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as user, \
             hulynet.Agent([Echo]) as agent:
            host.wait(timeout=5)
            user.wait(timeout=5)
            host.serve_agent(agent)
            with user.get("echo", uuid="py-traced") as echo:
                assert echo.request("echo", {"n": 1}) == {"n": 1}
                with pytest.raises(hulynet.RemoteError):
                    echo.request("no-such-operation", None)
                wait_for(lambda: len(named("hulynet.coordinator.request")) == 2 and len(named("hulynet.agent.request")) == 2,
                         message="the spans of two requests")
    finally:
        hulynet.set_span_handler(None)

    ok = [s for s in named("hulynet.coordinator.request") if s.status == "unset"]
    failed = [s for s in named("hulynet.coordinator.request") if s.status == "error"]
    assert len(ok) == 1 and len(failed) == 1
    for parent in (ok[0], failed[0]):
        children = [s for s in named("hulynet.agent.request") if s.parent_span_id == parent.span_id]
        assert len(children) == 1, "the agent's span is the child of the coordinator's"
        child = children[0]
        assert child.trace_id == parent.trace_id
        assert child.parent_is_remote and child.kind == "server"
        assert child.attributes["hulynet.container"] == "py-traced"
        assert parent.parent_span_id is None and not parent.parent_is_remote
        assert len(parent.trace_id) == 32 and len(parent.span_id) == 16
        assert 0 < parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns
    assert failed[0].status_message and failed[0].attributes["hulynet.error.code"] == "app"
    assert ok[0].trace_id != failed[0].trace_id
    assert threading.main_thread().name not in threads, "on library threads"
    assert hulynet.spans_dropped() == 0


def test_span_handler_must_be_callable():
    with pytest.raises(TypeError):
        hulynet.set_span_handler(42)
    hulynet.set_span_handler(None)  # none set: fine
