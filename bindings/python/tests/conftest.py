"""Test set-up: point the binding at the library built in this repository, and shared fixtures.

HULYNET_LIBRARY, when set, wins. Otherwise HULYNET_BUILD_LIBRARY, else the SwiftPM build output
<repo>/.build/release/libHulyNetC.so (`swift build -c release --product HulyNetC`). The binding is
imported from this source tree unless HULYNET_TEST_INSTALLED=1 (then the installed package is used).
HULYNET_TEST_BUNDLED=1 tests an installed platform wheel with the library inside it: the installed
package, and no library named at all (HULYNET_LIBRARY must be unset).
"""

import os
import pathlib
import sys

import pytest

BINDING = pathlib.Path(__file__).resolve().parent.parent  # bindings/python
REPO = BINDING.parent.parent
BUNDLED = bool(os.environ.get("HULYNET_TEST_BUNDLED"))

if BUNDLED:
    if os.environ.get("HULYNET_LIBRARY"):
        pytest.exit("HULYNET_TEST_BUNDLED=1 tests the library inside the installed wheel: unset HULYNET_LIBRARY",
                    returncode=4)
    os.environ["HULYNET_TEST_INSTALLED"] = "1"
elif not os.environ.get("HULYNET_LIBRARY"):
    library = os.environ.get("HULYNET_BUILD_LIBRARY") or str(REPO / ".build" / "release" / "libHulyNetC.so")
    if not os.path.exists(library):
        pytest.exit(f"libhulynet not found at {library}: build it with `cd {REPO} && swift build -c release "
                    "--product HulyNetC`, or set HULYNET_LIBRARY (or HULYNET_BUILD_LIBRARY) to the library's path",
                    returncode=4)
    os.environ["HULYNET_LIBRARY"] = library

if not os.environ.get("HULYNET_TEST_INSTALLED"):
    sys.path.insert(0, str(BINDING))

import hulynet  # noqa: E402

from helpers import TIMEOUTS, Recorder  # noqa: E402


@pytest.fixture
def server():
    with hulynet.Server("127.0.0.1", 0, timeouts=TIMEOUTS) as server:
        yield server


class Network:
    """The clients and agents of one test, closed at its end users first, then hosts, then agents
    (and the server after them): peers outlive the sockets that talk to them, the quickest order.
    (Other orders are tested on purpose in test_agent.py.)"""

    def __init__(self, server):
        self.server = server
        self.clients = []
        self.agents = []

    def client(self, wait=True):
        client = hulynet.Client("127.0.0.1", self.server.port, timeouts=TIMEOUTS)
        self.clients.append(client)
        if wait:
            client.wait(timeout=5)
        return client

    def agent(self, classes, **options):
        agent = hulynet.Agent(classes, **options)
        self.agents.append(agent)
        return agent

    def close(self):
        for client in reversed(self.clients):
            client.close()
        for agent in reversed(self.agents):
            agent.close()


@pytest.fixture
def network(server):
    network = Network(server)
    yield network
    network.close()


@pytest.fixture
def make_client(network):
    """make_client() -> a connected Client of `server`, closed after the test."""
    return network.client


@pytest.fixture
def make_agent(network):
    """make_agent(classes) -> an Agent closed after the test (after its clients)."""
    return network.agent


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def recorder():
    Recorder.reset()
    yield Recorder


@pytest.fixture
def served(network, recorder):
    """(agent_client, agent, user_client): the test kinds served by one client, used by another."""
    from helpers import Echo, Chat, Slow, Broken
    host = network.client()
    agent = network.agent([Echo, Chat, Slow, Broken])
    host.serve_agent(agent)
    user = network.client()
    Recorder.probe_client = user
    return host, agent, user


@pytest.fixture(autouse=True)
def no_leaked_callbacks():
    """Every test leaves the binding's callback registry as it found it (modulo late cleanups)."""
    before = len(hulynet._registry)
    yield
    from helpers import wait_for
    wait_for(lambda: len(hulynet._registry) <= before, timeout=3, message="registry entries released")
