"""The three faces on one network: a Python client against a C++ agent, and a Python agent serving
a C++ client, through a network server (whose coordinator is the Swift core behind libhulynet).

The C++ peer is bindings/cpp/tests/cross_peer.cpp; ctest runs this file with HULYNET_CROSS_PEER
set to its path (test cross-language-python-cpp). Without it these tests are skipped.
"""

import os
import subprocess

import pytest

import hulynet
from helpers import wait_for

PEER = os.environ.get("HULYNET_CROSS_PEER")
pytestmark = pytest.mark.skipif(not PEER, reason="HULYNET_CROSS_PEER (the C++ peer program) is not set")


# JSON text a parser would rewrite (key order, 1.10, 1e2, an integer no double holds, spaces).
TEXT = '{"zeta":1,"alpha":2,"big":12345678901234567890,"f":1.10,"e":1e2, "s" : [ ] }'


class PyEcho(hulynet.Container):
    kind = "py-echo"
    raw_json = True  # data is the caller's JSON text, answered and emitted as it is

    def request(self, operation, data, client_id):
        if operation == "language":
            return "python"
        if operation == "broadcast":
            return self.emit(data)
        return data


def test_python_client_against_cpp_agent(server, make_client):
    peer = subprocess.Popen([PEER, "agent", f"127.0.0.1:{server.port}"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        ready = peer.stdout.readline()
        assert ready.startswith("ready "), ready
        client = make_client()
        assert "cpp-echo" in client.kinds()
        with client.get("cpp-echo", labels=["cross"]) as reference:
            assert reference.request("language") == "c++"
            assert reference.request("echo", {"from": "python", "n": [1, 2]}) == {"from": "python", "n": [1, 2]}
            with reference.connect() as connection:
                events = []
                connection.set_event_handler(events.append)
                assert connection.request("broadcast", {"to": "python"}) == 1
                wait_for(lambda: events == [{"to": "python"}], message="the C++ container's event")
                # JSON text, byte for byte, through the C++ container and back.
                assert reference.request_text("echo", TEXT) == TEXT
                assert connection.request_text("echo", TEXT) == TEXT
                texts = []
                connection.set_event_handler(texts.append, text=True)
                assert connection.request_text("broadcast", TEXT) == "1"
                wait_for(lambda: texts == [TEXT], message="the C++ container's event as text")
    finally:
        peer.stdin.close()
        assert peer.wait(timeout=20) == 0


def test_cpp_client_against_python_agent(server, make_client, make_agent):
    host = make_client()
    host.serve_agent(make_agent([PyEcho]))
    result = subprocess.run([PEER, "client", f"127.0.0.1:{server.port}"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('ok "python"'), result.stdout
