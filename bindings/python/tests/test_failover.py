"""References follow their container when the client serving its agent leaves: Reference.on_moved,
uuid and endpoint after the move, requests made while it moves, the same Connection and event
handler afterwards, and no agent of the kind left."""

import asyncio
import json
import logging
import threading

import pytest

import hulynet
from helpers import Echo, wait_for


class GatedEcho(Echo):
    """Echo whose starts wait while the gate is closed (at most 3 s), so that a test can act while a
    container is moving, before the move completes; whoami names it."""

    gate = threading.Event()
    entered = 0

    def __init__(self, uuid, options):
        type(self).entered += 1
        self.gate.wait(3)
        super().__init__(uuid, options)

    def request(self, operation, data, client_id):
        answer = super().request(operation, data, client_id)
        return dict(answer, gated=True) if operation == "whoami" else answer


@pytest.fixture
def gate():
    GatedEcho.entered = 0
    GatedEcho.gate.set()
    yield GatedEcho
    GatedEcho.gate.set()


class Moves:
    """What a moved handler was told, in order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []

    def __call__(self, uuid, endpoint):
        with self.lock:
            self.seen.append((uuid, endpoint))

    def count(self):
        with self.lock:
            return len(self.seen)


def agent_of(endpoint):
    return json.loads(endpoint)["agentId"]


def registered(fn):
    """Is `fn` in the binding's callback registry (kept alive for the library to call)?"""
    with hulynet._registry._lock:
        return any(item is fn for item in hulynet._registry._items.values())


def test_reference_follows_its_container(network, recorder, gate):
    host_a, host_b, user = network.client(), network.client(), network.client()
    # Agent A alone first, so both containers start there.
    agent_a = network.agent([Echo])
    host_a.serve_agent(agent_a)
    by_uuid = user.get("echo", uuid="failover-4")
    by_labels = user.get("echo", labels=["failover-labels"])
    old_label_uuid = by_labels.uuid
    assert agent_of(by_uuid.endpoint) == agent_of(by_labels.endpoint) == agent_a.uuid
    agent_b = network.agent([GatedEcho])
    host_b.serve_agent(agent_b)

    conn_uuid, conn_labels = by_uuid.connect(), by_labels.connect()
    events_uuid, events_labels = [], []
    conn_uuid.on_event = events_uuid.append
    conn_labels.set_event_handler(events_labels.append)
    moved_uuid, moved_labels = Moves(), Moves()
    by_uuid.on_moved = moved_uuid
    by_labels.set_moved_handler(moved_labels)
    assert by_uuid.on_moved is moved_uuid

    # A's client leaves (unregistering agent A): both containers move to B, whose starts wait at the
    # gate, so the requests below are made while the containers are moving.
    gate.gate.clear()
    host_a.close()
    wait_for(lambda: gate.entered > 0, timeout=3, message="agent B asked to start a container")

    async def requests_while_moving():
        held = [asyncio.ensure_future(connection.request_async("whoami", timeout=3))
                for connection in (conn_uuid, conn_labels)]
        # Through the coordinator too: the reference's own request waits for the move as well.
        held.append(asyncio.ensure_future(by_uuid.request_async("whoami", timeout=3)))
        await asyncio.sleep(0)  # the tasks have made their C calls
        assert moved_uuid.count() == 0 and moved_labels.count() == 0
        gate.gate.set()
        return await asyncio.gather(*held)

    held_uuid, held_labels, held_through_network = asyncio.run(requests_while_moving())
    assert held_through_network["uuid"] == "failover-4" and held_through_network["gated"]
    wait_for(lambda: moved_uuid.count() == 1 and moved_labels.count() == 1, timeout=3, message="moved handlers")
    assert held_uuid["uuid"] == "failover-4" and held_uuid["gated"] and held_uuid["client"] == user.id
    assert held_labels["gated"] and held_labels["options"] == {"labels": ["failover-labels"]}

    # The uuid reference: the same uuid, on B.
    assert moved_uuid.seen[0][0] == by_uuid.uuid == conn_uuid.uuid == "failover-4"
    assert moved_uuid.seen[0][1] == by_uuid.endpoint and agent_of(by_uuid.endpoint) == agent_b.uuid

    # The label reference: a new container, with the same labels, on B.
    new_uuid, new_endpoint = moved_labels.seen[0]
    assert new_uuid != old_label_uuid and new_uuid == by_labels.uuid == conn_labels.uuid == held_labels["uuid"]
    assert new_endpoint == by_labels.endpoint and by_labels.endpoint_info["agentId"] == agent_b.uuid
    records = {record["uuid"]: record for record in user.list("echo")}
    assert records[new_uuid]["labels"] == ["failover-labels"] and old_label_uuid not in records

    # Requests through the references and over the same Connections reach B; the containers'
    # events reach the same handlers.
    assert by_uuid.request("whoami") == {"uuid": "failover-4", "client": None, "options": {"uuid": "failover-4"},
                                         "gated": True}
    assert by_labels.request("whoami")["uuid"] == new_uuid
    assert conn_uuid.request("emit", {"event": "after-uuid"}) == 1
    assert conn_labels.request("emit", {"event": "after-labels"}) == 1
    wait_for(lambda: "after-uuid" in events_uuid and "after-labels" in events_labels, message="events after the move")
    assert events_uuid == ["after-uuid"] and events_labels == ["after-labels"]
    assert moved_uuid.count() == 1 and moved_labels.count() == 1  # told once per move

    # No agent of the kind left: requests are held for their time, then fail saying why. (The
    # connection's once the client has heard that its container is gone: listeners hear it first.)
    heard = threading.Event()
    subscription = user.add_listener(lambda event: heard.set() if new_uuid in str(event) else None)
    host_b.close()
    with pytest.raises(hulynet.NotFound) as caught:
        by_uuid.request("echo", 1, timeout=0.5)
    assert "No suitable agents" in caught.value.message
    assert heard.wait(3)
    with pytest.raises(hulynet.NotFound) as caught:
        conn_labels.request("echo", 1, timeout=0.5)
    assert "No suitable agents" in caught.value.message
    assert moved_uuid.count() == 1
    subscription.remove()


def test_moved_handler_lifetime(served):
    host, agent, user = served
    reference = user.get("echo")
    first, second = (lambda uuid, endpoint: None), (lambda uuid, endpoint: None)
    reference.on_moved = first
    assert registered(first) and reference.on_moved is first
    reference.on_moved = second  # replaced: the first one is dropped
    assert registered(second) and not registered(first)
    reference.on_moved = None
    assert reference.on_moved is None and not registered(second)
    with pytest.raises(TypeError):
        reference.on_moved = 42
    reference.set_moved_handler(first)
    reference.close()  # releases it
    assert reference.on_moved is None and not registered(first)
    assert reference.uuid and reference.endpoint_info  # the last values stay readable
    with pytest.raises(hulynet.Closed):
        reference.on_moved = first
    assert not registered(first)

    # Closing the client closes its references, and so releases their handlers.
    other = user.get("echo", uuid="lifetime-other")
    other.on_moved = second
    assert registered(second)
    user.close()
    assert other.closed and not registered(second)


def test_moved_handler_exceptions_are_logged(network, caplog):
    host_a, host_b, user = network.client(), network.client(), network.client()
    agent_a, agent_b = network.agent([Echo]), network.agent([Echo])
    host_a.serve_agent(agent_a)
    reference = user.get("echo", uuid="failover-5")
    host_b.serve_agent(agent_b)
    calls = []

    def raising(uuid, endpoint):
        calls.append(uuid)
        raise RuntimeError("moved handler raised")

    reference.on_moved = raising
    with caplog.at_level(logging.ERROR, logger="hulynet"):
        host_a.close()
        wait_for(lambda: calls == ["failover-5"], timeout=3, message="the moved handler")
        wait_for(lambda: any("moved handler raised" in (r.exc_text or "") for r in caplog.records), message="the log")
    assert reference.request("echo", 7) == 7
    assert reference.endpoint_info["agentId"] == agent_b.uuid
