"""Example 1: a container with request/response (after huly.net's examples/01-basic-container-request-response.ts).

A container kind "data-processor" written in Python keeps a key-value store; a client gets a
container of that kind and stores, retrieves, lists and deletes entries through the coordinator.

    python3 examples/01_request_response.py

Starts its own coordinator on 127.0.0.1 (a free port) and exits 0 when every answer was as expected.
"""

import sys
from contextlib import ExitStack
from pathlib import Path

try:
    import hulynet
except ModuleNotFoundError:  # run from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import hulynet


class DataProcessor(hulynet.Container):
    kind = "data-processor"

    def __init__(self, uuid, options):
        self.data = {}
        print(f"[DataProcessor] container {uuid} created")

    # The service's operations: request(operation, data) calls the method of that name.
    def store(self, key, value):
        self.data[key] = value
        return {"success": True, "key": key}

    def retrieve(self, key):
        return {"success": True, "value": self.data.get(key), "found": key in self.data}

    def delete(self, key):
        return {"success": True, "deleted": self.data.pop(key, None) is not None}

    def list(self):
        return {"success": True, "keys": list(self.data)}

    def stats(self):
        return {"success": True, "totalKeys": len(self.data), "uuid": self.uuid}

    def request(self, operation, data, client_id):
        if operation not in ("store", "retrieve", "delete", "list", "stats"):
            raise ValueError(f"unknown operation {operation}")
        return getattr(self, operation)(**(data or {}))

    def terminate(self):
        print(f"[DataProcessor] container {self.uuid} terminating, {len(self.data)} entries cleaned up")
        self.data.clear()


def main():
    print("=== Basic container with request/response ===\n")
    with ExitStack() as stack:  # closes in reverse: client, agent, server
        server = stack.enter_context(hulynet.Server("127.0.0.1", 0))
        print(f"coordinator on port {server.port}")
        agent = stack.enter_context(hulynet.Agent([DataProcessor], uuid="data-agent"))
        client = stack.enter_context(hulynet.Client("127.0.0.1", server.port))
        client.wait(timeout=5)
        client.serve_agent(agent)
        print("agent served; kinds on the network:", client.kinds())

        print("\n--- requesting a container ---")
        with client.get("data-processor") as processor:
            print(f"got container {processor.uuid}")

            print("\n--- storing data ---")
            processor.request("store", {"key": "user:123", "value": {"name": "Alice", "age": 30}})
            processor.request("store", {"key": "user:456", "value": {"name": "Bob", "age": 25}})
            processor.request("store", {"key": "config:app", "value": {"theme": "dark"}})

            print("\n--- retrieving data ---")
            alice = processor.request("retrieve", {"key": "user:123"})
            print("retrieved:", alice)
            print("retrieved:", processor.request("retrieve", {"key": "user:456"}))
            missing = processor.request("retrieve", {"key": "nonexistent"})
            print("retrieved (not found):", missing)

            print("\n--- listing and stats ---")
            keys = processor.request("list")["keys"]
            print("all keys:", keys)
            stats = processor.request("stats")
            print("stats:", stats)

            print("\n--- deleting data ---")
            print("delete:", processor.request("delete", {"key": "user:456"}))
            after = processor.request("stats")
            print("stats after delete:", after)

            try:
                processor.request("explode")
            except hulynet.RemoteError as error:
                print(f"unknown operation answered with an error: {error}")

        assert alice == {"success": True, "value": {"name": "Alice", "age": 30}, "found": True}
        assert missing["found"] is False
        assert keys == ["user:123", "user:456", "config:app"]
        assert stats["totalKeys"] == 3 and stats["uuid"] == processor.uuid
        assert after["totalKeys"] == 2
    print("\nexample completed successfully")
    return 0


if __name__ == "__main__":
    sys.exit(main())
