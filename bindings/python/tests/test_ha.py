"""Several coordinators (docs/HA.md): Server(etcd=...), its role and health, and clients given a
list of coordinators. The election runs against a real etcd when one is installed."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

import hulynet
from helpers import TIMEOUTS, Echo, wait_for


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_single_server_leads(server):
    assert server.role == "leader"
    assert server.health()["status"] == "serving"


def test_client_given_a_list_follows_the_one_serving(server):
    with hulynet.Client(f"127.0.0.1:{free_port()},127.0.0.1:{server.port}", timeouts=TIMEOUTS) as client:
        client.wait(timeout=10)
        assert isinstance(client.kinds(), list)
    with pytest.raises(hulynet.InvalidArgument) as caught:
        hulynet.Client("127.0.0.1:1,127.0.0.1:1")
    assert "twice" in caught.value.message


def test_elected_server_arguments_and_standby_without_etcd():
    etcd = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", 0, etcd=etcd)  # a fixed port is needed
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", free_port(), etcd=etcd, lease_ttl=1.5)  # whole seconds
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", 0, lease_ttl=3)  # needs etcd
    port = free_port()
    with hulynet.Server("127.0.0.1", port, etcd=etcd) as standby:
        assert standby.role == "standby"
        assert standby.port == port
        wait_for(lambda: "etcd_error" in standby.health(), message="the etcd error in health")
        assert standby.health()["status"] == "standby"
        with hulynet.Server("127.0.0.1", port) as other:  # the standby binds nothing
            assert other.port == port


@pytest.fixture
def etcd():
    binary = shutil.which("etcd")
    if binary is None:
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server; scripts/setup.sh installs it)")
    client_port, peer_port = free_port(), free_port()
    directory = tempfile.mkdtemp(prefix="hulynet-etcd-")
    url, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    process = subprocess.Popen(
        [binary, "--name", "py", "--data-dir", os.path.join(directory, "data"), "--log-level", "warn",
         "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
         "--initial-advertise-peer-urls", peer, "--initial-cluster", f"py={peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def serving():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", client_port)) == 0
        wait_for(serving, timeout=15, message="etcd")
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def test_two_elected_servers_one_leads_and_the_other_takes_over(etcd):
    ports = [free_port(), free_port()]
    servers = [hulynet.Server("127.0.0.1", port, timeouts=TIMEOUTS, etcd=etcd) for port in ports]
    network = ",".join(f"127.0.0.1:{port}" for port in ports)
    try:
        leaders = wait_for(lambda: [s for s in servers if s.role == "leader"], timeout=10, message="a leader")
        assert len(leaders) == 1
        leader = leaders[0]
        assert leader.health()["status"] == "serving"
        with hulynet.Client(network, timeouts=TIMEOUTS) as host, hulynet.Agent([Echo]) as agent, \
                hulynet.Client(network, timeouts=TIMEOUTS) as client:
            host.wait(timeout=10)
            host.serve_agent(agent, advertised_host="127.0.0.1", port=0, timeout=5)
            client.wait(timeout=10)
            reference = client.get("echo", uuid="ha-python", timeout=5)
            assert reference.request("echo", {"n": 1}) == {"n": 1}
            # A graceful stop gives the leadership up at once: the other leads and the client
            # follows it, its reference restored there.
            leader.close()
            other = next(s for s in servers if s is not leader)
            wait_for(lambda: other.role == "leader", timeout=10, message="the other to lead")
            assert wait_for(lambda: _answers(reference), timeout=15, message="the reference to answer again")
    finally:
        for server in servers:
            server.close()


def _answers(reference):
    try:
        return reference.request("echo", {"n": 2}, timeout=2) == {"n": 2}
    except hulynet.Error:
        return False


def test_curve_secured_server_admits_its_keys_only(tmp_path):
    server_public, server_secret = hulynet.curve_keypair()
    alice_public, alice_secret = hulynet.curve_keypair()
    _, stranger_secret = hulynet.curve_keypair()
    assert len(server_public) == 40 and server_public != alice_public
    allow = tmp_path / "allow.txt"
    allow.write_text(f"# test\n{alice_public} alice\n")
    with hulynet.Server("127.0.0.1", 0, timeouts=TIMEOUTS, secret_key=server_secret, allow_list=str(allow)) as server:
        with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS, server_key=server_public,
                            secret_key=alice_secret) as alice:
            alice.wait(timeout=5)
            assert isinstance(alice.kinds(), list)
        with hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS, server_key=server_public,
                            secret_key=stranger_secret) as stranger:
            with pytest.raises(hulynet.Timeout) as caught:
                stranger.wait(timeout=1)
            assert "refused" in caught.value.message
        with pytest.raises(hulynet.InvalidArgument):
            hulynet.Client("127.0.0.1", server.port, secret_key=alice_secret)  # needs server_key
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.Server("127.0.0.1", 0, allow_list=str(allow))  # needs secret_key
