"""hulynet.Client, Reference, Connection and Subscription against real sockets."""

import ctypes
import json
import threading
import time

import pytest

import hulynet
from helpers import TIMEOUTS, Echo, wait_for


def test_wait_and_id(client):
    assert len(client.id) == 36 and client.id.count("-") == 4
    client.wait(timeout=1)  # already connected: returns at once
    client.wait()           # the library's default timeout
    assert "Client" in repr(client) and client.id in repr(client)


def test_wait_times_out_without_a_server():
    port = hulynet.Server().port  # closed at once by GC: a port with nothing behind it
    with hulynet.Client("127.0.0.1", port, timeouts=TIMEOUTS) as client:
        with pytest.raises(hulynet.Timeout) as caught:
            client.wait(timeout=0.2)
        assert caught.value.code == -4 and "within 200 ms" in caught.value.message
        assert isinstance(caught.value, TimeoutError)


def test_client_arguments():
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Client("127.0.0.1", 0)
    with pytest.raises(hulynet.InvalidArgument) as caught:
        hulynet.Client("", 3737)
    assert "host is empty" in caught.value.message
    with pytest.raises(hulynet.InvalidArgument) as caught:  # not a host name or address
        hulynet.Client("bad host", 3737)
    assert "not a host name or address" in caught.value.message
    with pytest.raises(TypeError):
        hulynet.Client(None, 3737)
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Client("127.0.0.1", 99999)


def test_library_client_port_zero_is_invalid_argument():
    """The binding checks the port itself too; the library agrees (it answered ECONNECT before)."""
    from hulynet import _ffi
    handle = _ffi.ClientP()
    with pytest.raises(hulynet.InvalidArgument) as caught:
        _ffi.lib.hulynet_client_connect(b"127.0.0.1", 0, None, ctypes.byref(handle))
    assert caught.value.message == "port 0 is out of range"


def test_timeout_arguments(client):
    with pytest.raises(hulynet.InvalidArgument):
        client.wait(timeout=0)
    with pytest.raises(hulynet.InvalidArgument):
        client.wait(timeout=-1)
    with pytest.raises(hulynet.InvalidArgument):
        client.kinds(timeout=float("nan"))
    with pytest.raises(TypeError):
        client.wait(timeout="1")
    client.wait(timeout=0.0001)  # rounds up to 1 ms, still a valid wait
    with pytest.raises(hulynet.InvalidArgument) as caught:  # longer than a day: the library refuses it
        client.wait(timeout=100000)
    assert "out of range" in caught.value.message
    with pytest.raises(hulynet.InvalidArgument) as caught:  # beyond int64: refused, not wrapped
        client.wait(timeout=1e20)
    assert "does not fit" in caught.value.message


def test_network_queries(served):
    host, agent, user = served
    kinds = user.kinds(timeout=2)
    assert sorted(kinds) == ["broken", "chat", "echo", "slow"]
    agents = user.agents()
    assert [a["agentId"] for a in agents] == [agent.uuid]
    assert sorted(agents[0]["kinds"]) == sorted(kinds) and agents[0]["containers"] == 0
    assert user.list() == [] and user.list("echo") == []
    with user.get("echo", labels=["a"], extra={"n": 1}) as reference:
        records = user.list("echo")
        assert [r["uuid"] for r in records] == [reference.uuid]
        assert records[0]["labels"] == ["a"] and records[0]["extra"] == {"n": 1}
        assert records[0]["agentId"] == agent.uuid
        assert user.list("chat") == []
        assert len(user.list()) == 1
        assert user.agents()[0]["containers"] == 1


def test_get_and_request(served, recorder):
    host, agent, user = served
    with user.get("echo", uuid="echo-1", labels=["tenant"], extra={"k": "v"}) as reference:
        assert reference.uuid == "echo-1"
        info = reference.endpoint_info
        assert info["agentId"] == agent.uuid and info["kind"] == 0 and info["port"] > 0
        assert json.loads(reference.endpoint) == info
        assert reference.client is user
        answer = reference.request("whoami")
        assert answer["uuid"] == "echo-1" and answer["client"] is None
        assert answer["options"] == {"uuid": "echo-1", "labels": ["tenant"], "extra": {"k": "v"}}
        value = {"list": [1, 2.5, None, True], "text": "héllo ✓", "nested": {"a": {"b": []}}}
        assert reference.request("echo", value) == value
        assert reference.request("echo") is None
        assert user.request("echo-1", "echo", "through the client", timeout=2) == "through the client"
        assert host.request("echo-1", "echo", 42) == 42
        # A get with the same uuid reaches the same container.
        with user.get("echo", uuid="echo-1") as again:
            assert again.uuid == "echo-1"
        assert len(recorder.of("start")) == 1


def test_labels_select_containers(served):
    host, agent, user = served
    a = user.get("echo", labels=["tenant-a"])
    b = user.get("echo", labels=["tenant-b"])
    a2 = user.get("echo", labels=("tenant-a",))
    try:
        assert a.uuid != b.uuid and a2.uuid == a.uuid
    finally:
        for reference in (a, b, a2):
            reference.close()


def test_connection_requests_and_events(served, recorder):
    host, agent, user = served
    with user.get("echo") as reference, reference.connect(timeout=2) as connection:
        assert connection.uuid == reference.uuid and connection.client is user
        assert connection.request("whoami")["client"] == user.id
        received = []
        connection.on_event = received.append
        assert connection.on_event is not None
        assert connection.request("emit", {"event": {"n": 1}}) == 1
        assert connection.request("emit", {"event": [1, "two"], "to": user.id}) == 1
        wait_for(lambda: len(received) == 2, message="two events")
        assert received == [{"n": 1}, [1, "two"]]
        wait_for(lambda: recorder.of("connect") == [(reference.uuid, user.id)])
    wait_for(lambda: recorder.of("disconnect") == [(reference.uuid, user.id)], message="disconnect")


def test_events_before_a_handler_reach_the_first_handler(served):
    host, agent, user = served
    with user.get("echo") as reference, reference.connect() as connection:
        connection.request("emit", {"event": "early"})
        received = []
        ready = threading.Event()
        connection.set_event_handler(lambda event: (received.append(event), ready.set()))
        assert ready.wait(5) and received == ["early"]


def test_event_handler_can_be_replaced_and_removed(served):
    host, agent, user = served
    with user.get("echo") as reference, reference.connect() as connection:
        first, second = [], []
        connection.on_event = first.append
        connection.request("emit", {"event": 1})
        wait_for(lambda: first == [1])
        connection.on_event = second.append
        connection.request("emit", {"event": 2})
        wait_for(lambda: second == [2])
        connection.on_event = None
        assert connection.on_event is None
        connection.request("emit", {"event": 3})
        connection.on_event = second.append  # events while no handler was set are not kept for it
        connection.request("emit", {"event": 4})
        wait_for(lambda: 4 in second)
        assert first == [1] and 3 not in first
        with pytest.raises(TypeError):
            connection.on_event = 42


def test_chat_broadcast_between_clients(served, make_client):
    host, agent, alice = served
    bob = make_client()
    inbox = {"alice": [], "bob": []}
    with alice.get("chat", uuid="room") as ref_a, bob.get("chat", uuid="room") as ref_b:
        conn_a = ref_a.connect()
        conn_a.on_event = inbox["alice"].append
        conn_b = ref_b.connect()
        conn_b.on_event = inbox["bob"].append
        assert sorted(conn_a.request("members")) == sorted([alice.id, bob.id])
        assert conn_b.request("say", "hi all") == 2
        wait_for(lambda: any(e.get("type") == "message" for e in inbox["alice"]))
        wait_for(lambda: any(e.get("type") == "message" for e in inbox["bob"]))
        assert {"type": "welcome", "you": alice.id} in inbox["alice"]
        assert {"type": "message", "from": bob.id, "text": "hi all"} in inbox["alice"]
        conn_b.close()
        wait_for(lambda: {"type": "left", "who": bob.id} in inbox["alice"], message="left event")
        conn_a.close()


def test_listener_sees_network_changes(server, make_client, recorder):
    watcher = make_client()
    events = []
    subscription = watcher.add_listener(events.append)
    assert subscription.active and subscription.id > 0
    host = make_client()
    with hulynet.Agent([Echo]) as agent:
        host.serve_agent(agent)
        wait_for(lambda: any(a["id"] == agent.uuid and a["event"] == 0 for e in events for a in e["agents"]),
                 message="agent added")
        with watcher.get("echo") as reference:
            wait_for(lambda: any(c["container"]["uuid"] == reference.uuid and c["event"] == 0
                                 for e in events for c in e["containers"]), message="container added")
            record = next(c["container"] for e in events for c in e["containers"]
                          if c["container"]["uuid"] == reference.uuid)
            assert record["kind"] == "echo" and record["agentId"] == agent.uuid
        # Released: removed after the unused timeout.
        wait_for(lambda: any(c["event"] == 2 for e in events for c in e["containers"]), message="container removed")
    wait_for(lambda: any(a["id"] == agent.uuid and a["event"] == 2 for e in events for a in e["agents"]),
             message="agent removed")
    subscription.remove()
    assert not subscription.active
    count = len(events)
    with hulynet.Agent([Echo]) as another:
        host.serve_agent(another)
        assert host.kinds() == ["echo"]
    assert len(events) == count  # removed: nothing more arrives
    subscription.remove()  # idempotent


def test_several_listeners_and_errors_in_listeners(server, make_client, caplog):
    watcher = make_client()
    good = []
    with watcher.add_listener(lambda event: 1 / 0):
        with watcher.add_listener(good.append):
            host = make_client()
            with hulynet.Agent([Echo]) as agent:
                host.serve_agent(agent)
                wait_for(lambda: good, message="an event")
    assert any("ZeroDivisionError" in r.exc_text for r in caplog.records if r.exc_text)
    with pytest.raises(TypeError):
        watcher.add_listener("not callable")


def test_release_then_close(served, recorder):
    host, agent, user = served
    reference = user.get("echo")
    reference.release(timeout=2)
    reference.release()  # idempotent in the library
    wait_for(lambda: recorder.of("terminate") == [(reference.uuid,)], message="terminate after release")
    reference.close()
    reference.close()
    with pytest.raises(hulynet.Closed):
        reference.request("echo")
    with pytest.raises(hulynet.Closed):
        reference.connect()
    with pytest.raises(hulynet.Closed):
        reference.release()


def test_close_releases_the_container(served, recorder):
    host, agent, user = served
    with user.get("echo") as reference:
        uuid = reference.uuid
    wait_for(lambda: recorder.of("terminate") == [(uuid,)], message="terminate after close")
    assert user.list("echo") == []


def test_two_holders_keep_the_container(served, make_client, recorder):
    host, agent, alice = served
    bob = make_client()
    ref_a = alice.get("echo", uuid="shared")
    ref_b = bob.get("echo", uuid="shared")
    ref_a.close()
    assert ref_b.request("echo", "still here") == "still here"
    assert recorder.of("terminate") == []
    ref_b.close()
    wait_for(lambda: recorder.of("terminate") == [("shared",)])


def test_closed_client_refuses_everything(server):
    client = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS)
    client.wait(timeout=5)
    client.close()
    client.close()
    assert client.closed
    agent = hulynet.Agent([Echo])
    try:
        calls = [
            lambda: client.wait(timeout=1), client.agents, client.kinds, client.list,
            lambda: client.get("echo"), lambda: client.request("x", "echo"),
            lambda: client.add_listener(print), lambda: client.serve_agent(agent),
            lambda: client.register_agent(agent),
        ]
        for call in calls:
            with pytest.raises(hulynet.Closed):
                call()
    finally:
        agent.close()


def test_children_are_closed_with_their_client(served, make_client):
    host, agent, user = served
    other = make_client()
    reference = other.get("echo")
    connection = reference.connect()
    received = []
    connection.on_event = received.append
    subscription = other.add_listener(print)
    other.close()
    assert reference.closed and connection.closed and not subscription.active
    for call in (lambda: reference.request("echo"), lambda: connection.request("echo"),
                 lambda: setattr(connection, "on_event", print)):
        with pytest.raises(hulynet.Closed):
            call()
    reference.close()
    connection.close()
    subscription.remove()


def test_request_errors(served):
    host, agent, user = served
    with user.get("echo") as reference:
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("fail", "it went wrong")
        assert caught.value.code == -6 and caught.value.message == "it went wrong"
        with pytest.raises(hulynet.RemoteError) as caught:
            reference.request("no such operation")
        assert "unknown operation no such operation" in caught.value.message
        with pytest.raises(hulynet.NotFound) as caught:
            user.request("no-such-container", "echo")
        assert caught.value.code == -3 and "no-such-container" in caught.value.message
        with reference.connect() as connection:
            with pytest.raises(hulynet.RemoteError) as caught:
                connection.request("fail")
            assert caught.value.message == "deliberate failure"


def test_unserialisable_data_is_refused_before_c(served):
    host, agent, user = served
    with user.get("echo") as reference, reference.connect() as connection:
        for call in (reference.request, connection.request, lambda op, data: user.request(reference.uuid, op, data)):
            with pytest.raises(TypeError):
                call("echo", {"x": object()})
            with pytest.raises(TypeError):
                call("echo", {1, 2})
            with pytest.raises(hulynet.InvalidJSON) as caught:
                call("echo", float("nan"))
            assert caught.value.code == -2
            circular = []
            circular.append(circular)
            with pytest.raises(hulynet.InvalidJSON):
                call("echo", circular)
            with pytest.raises(hulynet.InvalidJSON):
                call("echo", "\ud800")  # a lone surrogate is not UTF-8
        with pytest.raises(TypeError):
            user.get("echo", extra={"x": object()})
        with pytest.raises(TypeError):
            user.get("echo", labels="not-a-list")
        with pytest.raises(hulynet.InvalidArgument):  # labels must be strings: the library says so
            user.get("echo", labels=[1])
        with pytest.raises(TypeError):
            reference.request(None)
        with pytest.raises(hulynet.InvalidArgument):
            reference.request("nul\0in operation")


def test_large_and_unicode_payloads(served):
    host, agent, user = served
    with user.get("echo") as reference:
        big = {"items": list(range(20000)), "text": "x" * 200000, "unicode": "日本語 ✓ 🚀"}
        assert reference.request("echo", big) == big


def test_request_timeout(served):
    host, agent, user = served
    with user.get("slow") as reference:
        with pytest.raises(hulynet.Timeout) as caught:
            reference.request("sleep", 1.0, timeout=0.2)
        assert "200 ms" in caught.value.message
        assert reference.request("sleep", 0.01, timeout=2) == "done"


def test_concurrent_requests_from_threads(served):
    host, agent, user = served
    with user.get("echo") as reference:
        results, failures = [], []

        def work(n):
            try:
                for i in range(20):
                    assert reference.request("echo", [n, i]) == [n, i]
                results.append(n)
            except Exception as error:  # pragma: no cover - reported below
                failures.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures and sorted(results) == list(range(8))


def test_dropped_objects_are_closed_by_gc(served, recorder):
    import gc
    host, agent, user = served
    reference = user.get("echo")
    uuid = reference.uuid
    connection = reference.connect()
    del connection, reference
    gc.collect()
    wait_for(lambda: recorder.of("terminate") == [(uuid,)], message="terminate after the reference was dropped")


def test_timeouts_are_honoured(served):
    host, agent, user = served
    start = time.monotonic()
    with pytest.raises(hulynet.Timeout):  # no agent offers the kind: the get retries until its timeout
        user.get("no-such-kind", timeout=0.3)
    assert time.monotonic() - start < 2.5
    port = hulynet.Server().port  # nothing listens there any more
    with hulynet.Client("127.0.0.1", port, timeouts=TIMEOUTS) as lonely:
        for call in (lonely.agents, lonely.kinds, lonely.list, lambda timeout: lonely.request("x", "y", timeout=timeout)):
            start = time.monotonic()
            with pytest.raises(hulynet.Timeout):
                call(timeout=0.2)
            assert time.monotonic() - start < 2.5
