"""hulynet.Server: start, port, stats, errors, close."""

import json

import pytest

import hulynet
from helpers import TIMEOUTS, Echo, wait_for


def test_start_on_a_free_port():
    with hulynet.Server() as server:
        assert 0 < server.port < 65536
        assert server.address == f"127.0.0.1:{server.port}"
        assert server.stats() == hulynet.ServerStats(clients=0, agents=0, containers=0, requests=0, malformed=0)
        assert "Server 127.0.0.1:" in repr(server)
    assert server.closed
    assert "closed" in repr(server)


def test_every_address():
    with hulynet.Server("0.0.0.0", 0) as server:
        with hulynet.Client("127.0.0.1", server.port) as client:
            client.wait(timeout=5)
    with hulynet.Server("*", 0) as server:
        assert server.port > 0


def test_stats_count_clients_agents_containers_requests(server, make_client):
    host = make_client()
    with hulynet.Agent([Echo]) as agent:
        host.serve_agent(agent)
        user = make_client()
        with user.get("echo") as reference:
            reference.request("echo", 1)
            stats = wait_for(lambda: (lambda s: s if s.clients == 2 else None)(server.stats()))
            assert (stats.agents, stats.containers, stats.malformed) == (1, 1, 0)
            assert stats.requests >= 3  # ar, gg, cs at least


def test_port_in_use_is_a_bind_error(server):
    with pytest.raises(hulynet.BindError) as caught:
        hulynet.Server("127.0.0.1", server.port)
    assert caught.value.code == -7
    assert str(server.port) in caught.value.message
    assert isinstance(caught.value, OSError)


def test_bad_arguments():
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", 70000)
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", -1)
    with pytest.raises(TypeError):
        hulynet.Server(None)
    with pytest.raises(TypeError):
        hulynet.Server("127.0.0.1", "3737")
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("bad\0host")
    with pytest.raises(hulynet.BindError):
        hulynet.Server("not-an-address.invalid", 0)
    with pytest.raises(hulynet.InvalidArgument) as caught:  # empty or malformed: refused, not bound to "*"
        hulynet.Server("", 0)
    assert "host is empty" in caught.value.message
    with pytest.raises(hulynet.InvalidArgument) as caught:
        hulynet.Server("bad host", 0)
    assert "not a host name or address" in caught.value.message


def test_timeouts_forms():
    with hulynet.Server(timeouts={"alive": 2, "request": 1.5}) as server:
        assert server.port > 0
    with hulynet.Server(timeouts=hulynet.Timeouts()) as server:
        assert server.port > 0
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server(timeouts=hulynet.Timeouts(alive=-1))
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server(timeouts=hulynet.Timeouts(request=float("inf")))
    with pytest.raises(hulynet.InvalidArgument):  # beyond the library's range (a day)
        hulynet.Server(timeouts=hulynet.Timeouts(request=100000))
    with pytest.raises(hulynet.InvalidArgument) as caught:  # beyond int64: refused, not wrapped
        hulynet.Server(timeouts=hulynet.Timeouts(request=1e17))
    assert "does not fit" in caught.value.message
    with pytest.raises(TypeError):
        hulynet.Server(timeouts=3)
    with pytest.raises(TypeError):
        hulynet.Server(timeouts={"unknown": 1})


def test_close_is_idempotent_and_closed_server_raises():
    server = hulynet.Server(timeouts=TIMEOUTS)
    server.close()
    server.close()
    assert server.closed
    with pytest.raises(hulynet.Closed) as caught:
        server.stats()
    assert caught.value.code == -5
    with server:  # entering a closed server is harmless
        pass


def test_port_is_free_again_after_close():
    server = hulynet.Server()
    port = server.port
    server.close()
    with hulynet.Server("127.0.0.1", port) as again:
        assert again.port == port


def test_dropped_server_is_closed_by_gc():
    import gc
    server = hulynet.Server()
    port = server.port
    del server
    gc.collect()
    with hulynet.Server("127.0.0.1", port) as again:
        assert again.port == port


def _sample(text, key):
    """The value of the sample `key` (name{labels}) in a Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_after_a_known_workload(server, make_client):
    host = make_client()
    with hulynet.Agent([Echo]) as agent:
        host.serve_agent(agent)
        user = make_client()
        with user.get("echo") as reference:
            for index in range(4):
                assert reference.request("echo", index) == index
            with pytest.raises(hulynet.Error):
                reference.request("fail", "on purpose")
            text = server.metrics()
    assert _sample(text, 'hulynet_requests_total{method="cs"}') == 5
    assert _sample(text, 'hulynet_request_errors_total{method="cs"}') == 1
    assert _sample(text, 'hulynet_request_duration_seconds_count{method="cs"}') == 5
    assert _sample(text, 'hulynet_get_or_start_total{outcome="to_agent"}') == 1
    assert "# TYPE hulynet_request_duration_seconds histogram" in text


def test_metrics_over_http(server):
    import urllib.error
    import urllib.request

    port = server.serve_metrics()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "hulynet_clients" in answer.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"status": "serving", "role": "single"}
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=5)
    assert caught.value.code == 404
    with pytest.raises(hulynet.InvalidArgument):
        server.serve_metrics()  # one endpoint per server
    with pytest.raises(hulynet.InvalidArgument):
        server.serve_metrics("127.0.0.1", 70000)


def test_metrics_of_a_closed_server():
    server = hulynet.Server()
    server.close()
    with pytest.raises(hulynet.Error):
        server.metrics()
