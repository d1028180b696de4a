"""JSON text, byte for byte (issue 11): request_text / request_text_async, text event handlers,
JSONText answers and events, and containers with raw_json receive the caller's bytes; through the
coordinator, by uuid, over routed and direct connections. Malformed text is refused with
InvalidJSON before anything is sent; the object API still round-trips Python values.

The Swift side: test_through_the_swift_echo_kind runs the `hulynet` command-line agent (its
built-in echo kind) when $HULYNET_CLI names it or a SwiftPM build made <repo>/.build/*/hulynet.
"""

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import threading

import pytest

import hulynet
from helpers import Echo, wait_for

# The example of issue 11: key order, nesting, a number no double holds, two spellings a parser
# rewrites (1.10 -> 1.1, 1e2 -> 100.0).
CALLER_TEXT = '{"zeta":1,"alpha":2,"mid":{"b":1,"a":2},"big":12345678901234567890,"f":1.10,"e":1e2}'
# Spaces around tokens, escapes, and a raw non-ASCII character: kept too.
SPACED_TEXT = '[ 1.0 , {"z" : null, "a":"\\u00e9\\n\u00e9"} ]'
TEXTS = [CALLER_TEXT, SPACED_TEXT]
MALFORMED = ['{"a":1,}', "[1] [2]", "12345678901234567890x", "{", "1.", "'x'", ""]

REPO = pathlib.Path(__file__).resolve().parents[3]


class TextEcho(hulynet.Container):
    """Receives the caller's text (raw_json) and answers or emits it as it is."""

    kind = "text-echo"
    raw_json = True
    lock = threading.Lock()
    seen = []

    def request(self, operation, data, client_id):
        with TextEcho.lock:
            TextEcho.seen.append(data)
        if operation == "echo":
            return data
        if operation == "emit":
            return self.emit(data)
        if operation == "emit_bad":
            return self.emit(hulynet.JSONText("{oops"))
        if operation == "bad":
            return hulynet.JSONText('{"a":}')
        if operation == "nested":  # a JSONText is sent as is only as the whole value
            return {"x": hulynet.JSONText("1")}
        if operation == "parsed":
            return data.value()
        raise NotImplementedError(operation)


def last_seen():
    with TextEcho.lock:
        return TextEcho.seen[-1]


@pytest.fixture(params=["routed", "direct"])
def text_network(request, make_client, make_agent):
    """(user client, reference, connection, events) for a text-echo container, routed or direct."""
    host = make_client()
    agent = make_agent([TextEcho, Echo])
    agent.set_direct("text-echo", request.param == "direct")
    host.serve_agent(agent)
    user = make_client()
    reference = user.get("text-echo", uuid=f"text-{request.param}")
    assert json.loads(reference.endpoint)["kind"] == (1 if request.param == "direct" else 0)
    connection = reference.connect()
    events = []
    connection.set_event_handler(events.append, text=True)
    yield user, reference, connection, events
    connection.close()
    reference.close()


def test_text_byte_for_byte(text_network):
    user, reference, connection, events = text_network
    for count, text in enumerate(TEXTS, start=1):
        assert reference.request_text("echo", text) == text
        assert last_seen() == hulynet.JSONText(text)  # the container was given the caller's bytes
        assert user.request_text(reference.uuid, "echo", text) == text
        assert connection.request_text("echo", text) == text
        assert last_seen() == hulynet.JSONText(text)
        # The container emits the JSONText it was given; the event arrives as it was sent.
        assert connection.request_text("emit", text) == "1"
        wait_for(lambda: len(events) == count, message="the event")
        assert events[-1] == text and isinstance(events[-1], str)
    # No data is JSON null; a JSONText is taken as text too.
    assert reference.request_text("echo") == "null"
    assert reference.request_text("echo", hulynet.JSONText(CALLER_TEXT)) == CALLER_TEXT


def test_text_async(text_network):
    user, reference, connection, events = text_network

    async def main():
        for text in TEXTS:
            assert await reference.request_text_async("echo", text, timeout=2) == text
            assert await user.request_text_async(reference.uuid, "echo", text, timeout=2) == text
            assert await connection.request_text_async("echo", text, timeout=2) == text
        results = await asyncio.gather(*(connection.request_text_async("echo", f"[{i}, {i}.0 ]") for i in range(20)))
        assert results == [f"[{i}, {i}.0 ]" for i in range(20)]

    asyncio.run(main())


def test_malformed_text_is_refused(text_network):
    user, reference, connection, events = text_network
    before = len(TextEcho.seen)
    for text in MALFORMED:
        with pytest.raises(hulynet.InvalidJSON) as caught:
            reference.request_text("echo", text)
        assert caught.value.code == -2
        with pytest.raises(hulynet.InvalidJSON):
            connection.request_text("echo", text)
        with pytest.raises(hulynet.InvalidJSON):
            user.request_text(reference.uuid, "echo", text)

    async def main():
        for call in (reference.request_text_async("echo", "{"), connection.request_text_async("echo", "[1,]"),
                     user.request_text_async(reference.uuid, "echo", "nul")):
            with pytest.raises(hulynet.InvalidJSON):
                await call

    asyncio.run(main())
    assert len(TextEcho.seen) == before  # nothing reached the container
    # Not JSON text at all: refused by the binding.
    with pytest.raises(TypeError):
        reference.request_text("echo", {"a": 1})
    with pytest.raises(hulynet.InvalidArgument):
        reference.request_text("echo", '"a\0b"')
    # A JSONText that does not parse is refused the same way in the object API and in emit.
    with pytest.raises(hulynet.InvalidJSON):
        reference.request("echo", hulynet.JSONText("{oops"))


def test_container_answers_that_are_not_json(text_network):
    user, reference, connection, events = text_network
    with pytest.raises(hulynet.RemoteError, match="invalid JSON"):
        connection.request_text("bad")
    with pytest.raises(hulynet.RemoteError, match="JSON-serialisable"):
        reference.request_text("nested")
    with pytest.raises(hulynet.RemoteError, match="(?i)json"):  # the container's emit raised InvalidJSON
        connection.request_text("emit_bad")
    assert connection.request_text("echo", "0") == "0"  # the connection still works


def test_object_api_round_trips_values(text_network):
    user, reference, connection, events = text_network
    value = {"zeta": 1, "alpha": 2, "mid": {"b": 1, "a": 2}, "big": 12345678901234567890, "f": 1.1, "e": 100.0}
    assert reference.request("echo", value) == value
    assert connection.request("echo", [None, True, "é\n"]) == [None, True, "é\n"]
    # The object API writes a value once, compactly; the raw_json container gets those bytes.
    reference.request("echo", value)
    assert last_seen().text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # A JSONText in the object API is sent as it is and its answer parsed.
    assert reference.request("echo", hulynet.JSONText(CALLER_TEXT)) == json.loads(CALLER_TEXT)
    assert last_seen() == hulynet.JSONText(CALLER_TEXT)
    assert reference.request("parsed", hulynet.JSONText(CALLER_TEXT))["big"] == 12345678901234567890
    # Object event handlers still get values.
    values = []
    connection.set_event_handler(values.append)
    connection.request("emit", {"n": 1})
    wait_for(lambda: values == [{"n": 1}], message="the object event")

    async def main():
        assert await connection.request_async("echo", value) == value
        assert await user.request_async(reference.uuid, "echo", value) == value

    asyncio.run(main())


def test_text_api_against_an_object_container(text_network):
    """A container without raw_json parses the data and writes its answer with json.dumps: the value
    comes back, its spelling does not (which is what raw_json is for)."""
    user, reference, connection, events = text_network
    with user.get("echo") as echo:
        assert echo.request_text("echo", CALLER_TEXT) == \
            '{"zeta":1,"alpha":2,"mid":{"b":1,"a":2},"big":12345678901234567890,"f":1.1,"e":100.0}'


def test_text_listener(make_client, make_agent):
    host = make_client()
    changes = []
    subscription = host.add_listener(changes.append, text=True)
    host.serve_agent(make_agent([TextEcho]))
    wait_for(lambda: changes, message="a network change")
    assert isinstance(changes[0], str) and isinstance(json.loads(changes[0]), dict)
    subscription.remove()


def _cli():
    """The `hulynet` tool: $HULYNET_CLI, else a SwiftPM build's (release, then debug), else None."""
    if os.environ.get("HULYNET_CLI"):
        return os.environ["HULYNET_CLI"]
    for configuration in ("release", "debug"):
        path = REPO / ".build" / configuration / "hulynet"
        if path.exists():
            return str(path)
    return None


@pytest.mark.skipif(_cli() is None, reason="no hulynet command-line tool: build it (swift build --product hulynet) or set $HULYNET_CLI")
@pytest.mark.parametrize("mode", ["routed", "direct"])
def test_through_the_swift_echo_kind(mode):
    """Python's text through the Swift echo container of the `hulynet agent` command and back."""
    # The protocol's default timeouts: the command-line agent pings at the default pace.
    with hulynet.Server("127.0.0.1", 0) as server:
        command = [_cli(), "agent", "--network", f"127.0.0.1:{server.port}", "--kind", "swift-echo"]
        agent = subprocess.Popen(command + (["--direct"] if mode == "direct" else []), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            ready = agent.stdout.readline()  # printed once it is registered
            assert ready.startswith("agent "), (ready, agent.stderr.read() if agent.poll() is not None else "")
            with hulynet.Client("127.0.0.1", server.port) as user:
                user.wait(timeout=5)
                with user.get("swift-echo", timeout=5) as reference:
                    assert json.loads(reference.endpoint)["kind"] == (1 if mode == "direct" else 0)
                    with reference.connect(timeout=5) as connection:
                        events = []
                        connection.set_event_handler(events.append, text=True)
                        for count, text in enumerate(TEXTS, start=1):
                            assert reference.request_text("echo", text, timeout=5) == text
                            assert user.request_text(reference.uuid, "echo", text, timeout=5) == text
                            assert connection.request_text("echo", text, timeout=5) == text
                            assert connection.request_text("broadcast", text, timeout=5) == "1"
                            wait_for(lambda: len(events) == count, message="the Swift container's event")
                            assert events[-1] == text

                        async def main():
                            assert await reference.request_text_async("echo", CALLER_TEXT, timeout=5) == CALLER_TEXT
                            assert await connection.request_text_async("echo", SPACED_TEXT, timeout=5) == SPACED_TEXT

                        asyncio.run(main())
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(timeout=10)
            agent.stdout.close()
            agent.stderr.close()
