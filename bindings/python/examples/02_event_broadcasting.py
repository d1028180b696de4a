"""Example 2: event broadcasting (after huly.net's examples/02-event-broadcasting.ts).

A container kind "chat-room" keeps a room's messages and connected clients: it welcomes each
client that connects (an event to that client), broadcasts every message to everybody connected,
and tells the others when one leaves. Three clients (alice, bob, charlie) get the same room,
connect to it, receive its events through Connection.on_event, and chat.

    python3 examples/02_event_broadcasting.py

Starts its own coordinator on 127.0.0.1 (a free port) and exits 0 when every client received every
event it should have.
"""

import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

try:
    import hulynet
except ModuleNotFoundError:  # run from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import hulynet


class ChatRoom(hulynet.Container):
    kind = "chat-room"

    def __init__(self, uuid, options):
        self.name = (options.get("labels") or ["general"])[0]
        self.messages = []
        self.clients = set()
        self.lock = threading.Lock()  # requests and connects may come on several library threads
        print(f"[ChatRoom] room '{self.name}' created ({uuid})")

    def connect(self, client_id):
        with self.lock:
            self.clients.add(client_id)
            count, history = len(self.clients), len(self.messages)
        self.emit({"type": "welcome", "message": f"Welcome to {self.name}!", "currentUsers": count,
                   "messageHistory": history}, client_id)

    def disconnect(self, client_id):
        with self.lock:
            self.clients.discard(client_id)
            remaining = len(self.clients)
        self.emit({"type": "userLeft", "clientId": client_id, "remainingUsers": remaining})

    def request(self, operation, data, client_id):
        if operation == "sendMessage":
            message = {"username": data["username"], "text": data["text"], "timestamp": int(time.time() * 1000)}
            with self.lock:
                self.messages.append(message)
                count = len(self.messages)
            print(f"[ChatRoom] {message['username']}: {message['text']}")
            delivered = self.emit({"type": "newMessage", "message": message, "messageCount": count})
            return {"success": True, "messageId": count - 1, "delivered": delivered}
        if operation == "getHistory":
            with self.lock:
                return {"success": True, "messages": list(self.messages), "totalMessages": len(self.messages)}
        if operation == "getUserCount":
            with self.lock:
                return {"success": True, "count": len(self.clients), "connectedClients": sorted(self.clients)}
        if operation == "getRoomInfo":
            with self.lock:
                return {"success": True, "roomName": self.name, "uuid": self.uuid,
                        "messageCount": len(self.messages), "clientCount": len(self.clients)}
        raise ValueError(f"unknown operation {operation}")

    def terminate(self):
        print(f"[ChatRoom] room '{self.name}' closing")


class Participant:
    """A client in the room: its events, and a way to wait for one."""

    def __init__(self, name, client):
        self.name = name
        self.client = client
        self.events = []
        self.changed = threading.Condition()

    def on_event(self, event):  # on a library thread
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout=5.0):
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.events), timeout):
                raise RuntimeError(f"{self.name} did not receive the expected events: {self.events}")


def messages(events):
    return [e["message"]["text"] for e in events if e.get("type") == "newMessage"]


def main():
    print("=== Event broadcasting container ===\n")
    with ExitStack() as stack:  # closes in reverse: connections, references, clients, agent, server
        server = stack.enter_context(hulynet.Server("127.0.0.1", 0))
        agent = stack.enter_context(hulynet.Agent([ChatRoom], uuid="chat-agent"))
        host = stack.enter_context(hulynet.Client("127.0.0.1", server.port))
        host.wait(timeout=5)
        host.serve_agent(agent)
        print(f"coordinator on port {server.port}, agent served")

        people = []
        connections = {}
        for name in ("alice", "bob", "charlie"):
            client = stack.enter_context(hulynet.Client("127.0.0.1", server.port))
            client.wait(timeout=5)
            person = Participant(name, client)
            room = stack.enter_context(client.get("chat-room", uuid="room-general", labels=["general"]))
            connection = stack.enter_context(room.connect())
            connection.on_event = person.on_event
            connections[name] = connection
            people.append(person)
        print(f"three clients joined room {room.uuid}")

        alice, bob, charlie = people
        for person in people:
            person.wait_for(lambda events: any(e.get("type") == "welcome" for e in events))
        print("\n--- room information ---")
        print(connections["alice"].request("getRoomInfo"))

        print("\n--- sending messages ---")
        print(connections["alice"].request("sendMessage", {"username": "Alice", "text": "Hello everyone!"}))
        print(connections["bob"].request("sendMessage", {"username": "Bob", "text": "Hi Alice!"}))
        print(connections["charlie"].request("sendMessage", {"username": "Charlie", "text": "Hey folks!"}))

        expected = ["Hello everyone!", "Hi Alice!", "Hey folks!"]
        for person in people:
            person.wait_for(lambda events: messages(events) == expected)
            print(f"{person.name} received: {messages(person.events)}")

        print("\n--- user count ---")
        count = connections["alice"].request("getUserCount")
        print("users in room:", count["count"])
        assert count["count"] == 3 and sorted(count["connectedClients"]) == sorted(p.client.id for p in people)

        print("\n--- message history ---")
        history = connections["bob"].request("getHistory")
        for index, message in enumerate(history["messages"], 1):
            print(f"  {index}. {message['username']}: {message['text']}")
        assert history["totalMessages"] == 3

        print("\n--- charlie leaves ---")
        connections["charlie"].close()
        for person in (alice, bob):
            person.wait_for(lambda events: any(e.get("type") == "userLeft" and e["clientId"] == charlie.client.id
                                               for e in events))
        print("alice and bob were told; users now:", connections["alice"].request("getUserCount")["count"])
    print("\nexample completed successfully")
    return 0


if __name__ == "__main__":
    sys.exit(main())
