"""Requests per second through the coordinator (`cs`) from Python, the same topology as
`hulynet bench` and bench/c_request_rate.c: a server, an agent serving an echo kind (written in
Python here), and a client, in one process on 127.0.0.1. Prints "<case>\t<requests/s>".

    python3 bench/python_request_rate.py [seconds-per-case] [bytes]
"""

import sys
import time

import hulynet


class Echo(hulynet.Container):
    kind = "echo"

    def request(self, operation, data, client_id):
        return data


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    data = "x" * max(0, size - 2)
    with hulynet.Server("127.0.0.1", 0) as server, \
            hulynet.Client("127.0.0.1", server.port) as host, \
            hulynet.Agent([Echo]) as agent, \
            hulynet.Client("127.0.0.1", server.port) as client:
        host.serve_agent(agent)
        client.wait(timeout=5)
        with client.get("echo") as reference:
            uuid = reference.uuid
            count, begin = 0, time.monotonic()
            end = begin + seconds
            while time.monotonic() < end:
                client.request(uuid, "echo", data)
                count += 1
            print(f"cs sync\t{count / (time.monotonic() - begin):.0f}", flush=True)


if __name__ == "__main__":
    main()
