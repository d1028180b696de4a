"""Container kinds written in Python, hosted by hulynet.Agent and called from other clients."""

import json
import logging
import threading
import time

import pytest

import hulynet
from helpers import TIMEOUTS, Echo, wait_for


def test_python_kind_called_from_another_client(server, recorder):
    """The agent runs in one client; a second client (as another process would) gets and calls it."""
    with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as host, hulynet.Agent([Echo]) as agent:
        host.wait(timeout=5)
        host.serve_agent(agent, advertised_host="127.0.0.1", port=0, timeout=5)
        assert agent.uuid and agent.kinds == ["echo"]
        assert "Agent" in repr(agent)
        with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as user:
            user.wait(timeout=5)
            with user.get("echo", extra={"who": "user"}) as reference:
                assert reference.request("echo", {"a": [1, 2]}) == {"a": [1, 2]}
                with reference.connect() as connection:
                    assert connection.request("whoami")["client"] == user.id
            assert recorder.of("start")[0][2] == {"extra": {"who": "user"}}
            assert [r[1] for r in recorder.of("request")] == ["echo", "whoami"]
            assert recorder.of("request")[1][2] == user.id


def test_agent_with_a_fixed_uuid(make_client):
    host = make_client()
    with hulynet.Agent([Echo], uuid="my-agent") as agent:
        assert agent.uuid == "my-agent"
        host.serve_agent(agent)
        assert host.agents()[0]["agentId"] == "my-agent"


def test_register_agent_without_endpoint(make_client, recorder):
    host = make_client()
    with hulynet.Agent([Echo]) as agent:
        host.register_agent(agent, timeout=5)
        user = make_client()
        with user.get("echo") as reference:
            assert reference.endpoint_info["kind"] == 2  # no connection: requests go through the coordinator
            assert reference.request("echo", "via coordinator") == "via coordinator"
            with pytest.raises(hulynet.InvalidArgument) as caught:
                reference.connect()
            assert "no connection endpoint" in caught.value.message


def test_an_agent_is_served_by_one_client(make_client):
    first, second = make_client(), make_client()
    with hulynet.Agent([Echo]) as agent:
        first.serve_agent(agent)
        with pytest.raises(hulynet.InvalidArgument) as caught:
            second.serve_agent(agent)
        assert "served by a client already" in caught.value.message
        with pytest.raises(hulynet.InvalidArgument):
            first.register_agent(agent)


def test_agent_arguments():
    with pytest.raises(TypeError):
        hulynet.Agent([object])
    with pytest.raises(TypeError):
        hulynet.Agent([type("NoKind", (hulynet.Container,), {})])
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Agent([Echo, Echo])
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Agent([type("Nul", (hulynet.Container,), {"kind": "a\0b"})])
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Agent([Echo], uuid="")
    with hulynet.Agent([]) as empty:
        assert empty.kinds == []


def test_agent_close_terminates_containers(make_client, recorder):
    host, user = make_client(), make_client()
    agent = hulynet.Agent([Echo])
    host.serve_agent(agent)
    reference = user.get("echo")
    agent.close()
    assert recorder.of("terminate") == [(reference.uuid,)]  # close waited for terminate
    agent.close()
    assert agent.closed
    with pytest.raises(hulynet.Closed):
        host.serve_agent(agent)
    with pytest.raises(hulynet.Closed):
        agent.add_stateless("echo", "x")
    wait_for(lambda: user.kinds() == [], message="the agent is gone from the network")
    reference.close()


def test_client_close_stops_its_agents(server, recorder):
    host = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS)
    host.wait(timeout=5)
    agent = hulynet.Agent([Echo])
    host.serve_agent(agent)
    with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS) as user:
        user.wait(timeout=5)
        reference = user.get("echo")
        host.close()
        assert recorder.of("terminate") == [(reference.uuid,)]
        wait_for(lambda: user.kinds() == [], message="the agent is unregistered")
        reference.close()
    agent.close()  # after its client: still fine


def test_raising_container_answers_an_error(served):
    host, agent, user = served
    with user.get("echo") as reference:
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("fail", "bad input: 42")
        assert caught.value.message == "bad input: 42"
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("unserialisable")
        assert "not JSON-serialisable" in caught.value.message
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("nan")
        assert "cannot be written as JSON" in caught.value.message
        # and the container still works
        assert reference.request("echo", 1) == 1


def test_container_error_mentioning_not_found_stays_remote(served):
    host, agent, user = served
    with user.get("echo") as reference:
        with pytest.raises(hulynet.RemoteError):
            reference.request("fail", "user not found")


def test_deferred_answers(served):
    host, agent, user = served
    with user.get("echo") as reference:
        assert reference.request("later", {"x": 1}) == {"x": 1}
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("later_fail")
        assert caught.value.message == "late failure"


def test_slow_deferred_answers_do_not_block_the_library(served):
    """Slow answers on worker threads: other requests go on meanwhile."""
    host, agent, user = served
    with user.get("slow") as slow, user.get("echo") as echo:
        results = []
        threads = [threading.Thread(target=lambda: results.append(slow.request("sleep", 0.5))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for i in range(20):
            assert echo.request("echo", i) == i
        for thread in threads:
            thread.join(10)
        assert results == ["done"] * 4


def test_blocking_call_inside_a_callback_is_refused(served):
    host, agent, user = served
    with user.get("echo") as reference:
        answer = reference.request("blocking")
        assert answer["error"] == "InvalidArgument" and answer["code"] == -1
        assert "inside a hulynet callback" in answer["message"]


def test_emit_counts_and_targets(served, make_client, recorder):
    host, agent, alice = served
    bob = make_client()
    with alice.get("echo", uuid="room") as ref_a, bob.get("echo", uuid="room") as ref_b:
        assert ref_a.request("emit", {"event": "nobody"}) == 0
        conn_a, conn_b = ref_a.connect(), ref_b.connect()
        got_a, got_b = [], []
        conn_a.on_event, conn_b.on_event = got_a.append, got_b.append
        assert ref_a.request("emit", {"event": "all"}) == 2
        assert ref_a.request("emit", {"event": "to bob", "to": bob.id}) == 1
        wait_for(lambda: got_a == ["all"] and got_b == ["all", "to bob"], message="targeted events")
        with pytest.raises(hulynet.RemoteError) as caught:  # NotFound inside the container, answered as an error
            ref_a.request("emit", {"event": "x", "to": "not-connected"})
        assert "not connected" in caught.value.message
        conn_a.close()
        conn_b.close()


def test_emit_outside_callbacks_and_after_terminate(served, make_agent, recorder):
    host, agent, user = served
    instances = []

    class Keeper(Echo):
        kind = "keeper"

        def __init__(self, uuid, options):
            super().__init__(uuid, options)
            instances.append(self)

    keeper_agent = make_agent([Keeper])
    host.serve_agent(keeper_agent)
    with user.get("keeper") as reference:
        with reference.connect() as connection:
            received = []
            connection.on_event = received.append
            container = instances[0]
            assert container.uuid == reference.uuid
            wait_for(lambda: recorder.of("connect"), message="connect")
            assert container.emit({"from": "a test thread"}) == 1
            assert container.emit("to one", client_id=user.id) == 1
            with pytest.raises(hulynet.NotFound):
                container.emit("x", client_id="nobody")
            with pytest.raises(TypeError):
                container.emit(object())
            wait_for(lambda: len(received) == 2)
    # Released: it stops after the unused timeout.
    wait_for(lambda: recorder.of("terminate") == [(instances[0].uuid,)], message="terminate")
    with pytest.raises(hulynet.Closed):
        instances[0].emit("after terminate")


def test_failing_start_and_raising_callbacks_are_contained(served, recorder, caplog):
    host, agent, user = served
    with caplog.at_level(logging.ERROR, logger="hulynet"):
        with pytest.raises(hulynet.RemoteError) as caught:
            user.get("broken")
        assert "failed to start" in caught.value.message
        assert any("broken cannot start" in (r.exc_text or "") for r in caplog.records)
        with user.get("broken", extra={"start": "ok"}) as reference:
            with reference.connect() as connection:
                assert connection.request("anything") == "ok"
        wait_for(lambda: recorder.of("terminate"), message="terminate of broken")
        # Callbacks run on the library's callback threads: their logs come when they have raised.
        for text in ("connect raised", "disconnect raised", "terminate raised"):
            wait_for(lambda: text in " ".join(r.exc_text or "" for r in caplog.records), message=text)


def test_start_may_return_a_hulynet_status(make_client, caplog):
    class Refuses(hulynet.Container):
        kind = "refuses"

        def __init__(self, uuid, options):
            raise hulynet.NotFound(message="no such tenant")

    host, user = make_client(), make_client()
    with hulynet.Agent([Refuses]) as agent:
        host.serve_agent(agent)
        with pytest.raises(hulynet.RemoteError) as caught:
            user.get("refuses")
        assert "status -3" in caught.value.message


def test_stateless_container(make_client, recorder):
    host, user = make_client(), make_client()
    with hulynet.Agent([Echo]) as agent:
        instance = agent.add_stateless("echo", "stateless-1", {"labels": ["ha"]})
        assert instance.uuid == "stateless-1"
        with pytest.raises(hulynet.NotFound):
            agent.add_stateless("nokind", "x")
        host.serve_agent(agent)
        assert [r["uuid"] for r in user.list("echo")] == ["stateless-1"]
        assert user.request("stateless-1", "whoami")["options"] == {"labels": ["ha"], "uuid": "stateless-1"}
        with user.get("echo", uuid="stateless-1") as reference:
            assert reference.request("echo", 5) == 5
            # A stateless container emits to its connected clients like any other.
            with reference.connect() as connection:
                got = []
                connection.set_event_handler(got.append)
                wait_for(lambda: instance.emit("x") == 1, message="the connection reached the stateless container")
                wait_for(lambda: "x" in got, message="the event from the stateless container")
            with pytest.raises(hulynet.NotFound):
                instance.emit("y", client_id="nobody")
    assert ("stateless-1",) in recorder.of("terminate")


def test_default_container_methods(make_client, make_agent):
    class Minimal(hulynet.Container):
        kind = "minimal"

    class Described(hulynet.Container):
        kind = "described"

        def request(self, operation, data, client_id):
            return {"uuid": self.uuid, "options": self.options}

    host, user = make_client(), make_client()
    host.serve_agent(make_agent([Minimal, Described]))
    with user.get("minimal", labels=["x"]) as reference, reference.connect() as connection:
        with pytest.raises(hulynet.RemoteError) as caught:
            connection.request("op")
        assert "does not handle operation 'op'" in caught.value.message
    with user.get("described", uuid="d-1", labels=["x"]) as reference:
        assert reference.request("any") == {"uuid": "d-1", "options": {"uuid": "d-1", "labels": ["x"]}}


@pytest.mark.parametrize("order", ["server-first", "agent-first", "connection-first", "clients-first"])
def test_any_teardown_order_leaves_networking_working(order, recorder):
    """Objects may be closed in any order; afterwards a new network still works (a library that
    left libzmq's shared I/O thread blocked would stall every later socket of the process)."""
    for iteration in range(2):  # (an agent closed after its server waits 2 s to unregister)
        server = hulynet.Server(timeouts=TIMEOUTS)
        host = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS)
        user = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS)
        host.wait(timeout=5)
        user.wait(timeout=5)
        agent = hulynet.Agent([Echo])
        host.serve_agent(agent)
        reference = user.get("echo")
        connection = reference.connect()
        connection.on_event = lambda event: None
        assert connection.request("echo", iteration) == iteration
        objects = {
            "server-first": [server, agent, host, user, connection, reference],
            "agent-first": [agent, user, host, server, connection, reference],
            "connection-first": [connection, reference, agent, user, host, server],
            "clients-first": [user, host, agent, server, reference, connection],
        }[order]
        for item in objects:
            item.close()
    with hulynet.Server(timeouts=TIMEOUTS) as server, hulynet.Client("127.0.0.1", server.port) as client:
        client.wait(timeout=5)


def _thread_name():
    """The native name of the calling thread (the library names its callback threads)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
        return comm.read().strip()


class ThreadProbe(hulynet.Container):
    """Answers the name of the thread request() runs on; counts connects off the callback threads."""

    kind = "thread-probe"
    inline_requests = True
    connects = 0
    off_pool = 0

    def connect(self, client_id):
        type(self).connects += 1
        if _thread_name() != "hulynet-cb":
            type(self).off_pool += 1

    def request(self, operation, data, client_id):
        return _thread_name()


def test_inline_requests_run_on_the_agents_io_thread(make_client, make_agent):
    host, user = make_client(), make_client()
    agent = make_agent([ThreadProbe])
    host.serve_agent(agent)
    with user.get("thread-probe") as reference, reference.connect() as connection:
        wait_for(lambda: ThreadProbe.connects == 1, message="connect")
        assert ThreadProbe.off_pool == 0  # connect ran on a callback thread
        assert connection.request("where") != "hulynet-cb"  # the class attribute asked for inline requests
        assert reference.request("where") != "hulynet-cb"  # through the coordinator as well
        agent.set_inline_requests("thread-probe", False)
        assert connection.request("where") == "hulynet-cb"
        agent.set_inline_requests("thread-probe")
        assert connection.request("where") != "hulynet-cb"
    with pytest.raises(hulynet.NotFound):
        agent.set_inline_requests("no-such-kind")


class Sleeper(hulynet.Container):
    """Blocks its callback thread for 1.5 s on every request (as a careless container would)."""

    kind = "sleeper"
    started = 0
    lock = threading.Lock()

    def request(self, operation, data, client_id):
        with Sleeper.lock:
            Sleeper.started += 1
        time.sleep(1.5)
        return data


def test_blocking_callbacks_do_not_stall_the_library(make_client, make_agent):
    """Three Python request callbacks block at once (more than Swift's cooperative pool has
    threads on a 2-core machine) while gets and requests of another container go on quickly."""
    hulynet.set_callback_threads(8)
    host, user, other = make_client(), make_client(), make_client()
    agent = make_agent([Sleeper, Echo])
    host.serve_agent(agent)
    Sleeper.started = 0
    with user.get("sleeper") as slow:
        callers = [threading.Thread(target=slow.request, args=("wait", i)) for i in range(3)]
        for caller in callers:
            caller.start()
        wait_for(lambda: Sleeper.started == 3, timeout=1.0, message="three blocking callbacks at once")
        began = time.monotonic()
        with other.get("echo") as echo:
            for i in range(20):
                assert echo.request("echo", i) == i
        took = time.monotonic() - began
        assert took < 1.0, f"a get and 20 requests took {took:.2f} s while callbacks blocked"
        assert all(caller.is_alive() for caller in callers)  # the slow ones were still blocked
        for caller in callers:
            caller.join(timeout=5)
    hulynet.set_callback_threads(0)


class Refusing(hulynet.Container):
    """Answers with the error its operation names."""

    kind = "refusing"

    def request(self, operation, data, client_id):
        if operation == "busy":
            raise hulynet.RetryLater(message="busy, retry later")
        if operation == "limit":
            raise hulynet.LimitReached(message="too much")
        raise ValueError("Container abc not found")  # the network's words, a container's error


def test_errors_by_status_not_text(make_client, make_agent):
    host, user = make_client(), make_client()
    agent = make_agent([Refusing])
    host.serve_agent(agent)
    with user.get("refusing") as reference, reference.connect() as connection:
        for target in (reference, connection):
            with pytest.raises(hulynet.RetryLater) as caught:
                target.request("busy")
            assert caught.value.message == "busy, retry later"
            with pytest.raises(hulynet.LimitReached):
                target.request("limit")
            with pytest.raises(hulynet.RemoteError) as caught:
                target.request("other")
            assert caught.value.message == "Container abc not found"
    with pytest.raises(hulynet.NotFound):
        user.request("no-such-container", "x")


class DirectEcho(Echo):
    """Echo, each container on an endpoint of its own."""

    kind = "direct-echo"
    direct = True


def test_direct_containers(make_client, make_agent):
    host, user = make_client(), make_client()
    agent = make_agent([DirectEcho, Echo])
    host.serve_agent(agent)
    agent_port = json.loads(user.agents()[0]["endpoint"])["port"]
    with user.get("direct-echo") as reference:
        info = reference.endpoint_info
        assert info["kind"] == 1 and info["uuid"] == reference.uuid and info["port"] != agent_port
        events = []
        with reference.connect() as connection:
            connection.on_event = events.append
            assert connection.request("echo", {"d": [1]}) == {"d": [1]}
            assert connection.request("whoami")["client"] == user.id
            assert connection.request("emit", {"event": "direct event"}) == 1
            wait_for(lambda: "direct event" in events, message="the direct container's event")
        assert reference.request("echo", 5) == 5  # through the coordinator as well
    with user.get("echo") as routed:
        assert routed.endpoint_info["kind"] == 0
    agent.set_direct("echo")  # by call: the next echo container is direct
    with user.get("echo", uuid="now-direct") as reference:
        assert reference.endpoint_info["kind"] == 1
    with pytest.raises(hulynet.NotFound):
        agent.set_direct("no-such-kind")


def test_handlers_go_with_the_librarys_destroy_notification(make_client, make_agent):
    """Every handler given to the library leaves the binding's registry once the library says
    (through the destroy notification) that it will not call it again."""
    from hulynet import _ffi
    host, user = make_client(), make_client()
    host.serve_agent(make_agent([Echo]))
    with user.get("echo") as reference:
        connection = reference.connect()
        baseline = len(_ffi.registry)
        connection.on_event = lambda event: None
        connection.on_event = lambda event: None  # replaces: the first one goes
        reference.on_moved = lambda uuid, endpoint: None
        subscription = user.add_listener(lambda event: None)
        assert len(_ffi.registry) == baseline + 3
        subscription.remove()
        assert len(_ffi.registry) == baseline + 2
        connection.on_event = None
        assert len(_ffi.registry) == baseline + 1
        connection.close()
    wait_for(lambda: len(_ffi.registry) <= baseline, message="the moved handler goes with its reference")
