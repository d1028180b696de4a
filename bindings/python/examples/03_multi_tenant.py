"""Example 3: multi-tenant containers selected by labels (after huly.net's examples/03-multi-tenant.ts).

Each tenant gets its own "tenant-workspace" container, chosen by the label that names the tenant:
a get with labels ["tenant-acme"] reaches ACME's workspace (started on first use, reused after),
never Globex's. The workspaces keep users and documents; the example shows that tenants' data stay
apart.

    python3 examples/03_multi_tenant.py

Starts its own coordinator on 127.0.0.1 (a free port) and exits 0 when every tenant saw exactly its
own data.
"""

import sys
import time
from contextlib import ExitStack
from pathlib import Path

try:
    import hulynet
except ModuleNotFoundError:  # run from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import hulynet


class TenantWorkspace(hulynet.Container):
    kind = "tenant-workspace"

    def __init__(self, uuid, options):
        self.tenant = (options.get("labels") or ["default"])[0]
        self.users = []
        self.documents = {}
        self.counter = 0
        print(f"[Workspace] created for tenant {self.tenant} ({uuid})")

    def request(self, operation, data, client_id):
        data = data or {}
        if operation == "addUser":
            if data["userId"] not in self.users:
                self.users.append(data["userId"])
            return {"success": True, "userId": data["userId"], "userCount": len(self.users)}
        if operation == "removeUser":
            removed = data["userId"] in self.users
            if removed:
                self.users.remove(data["userId"])
            return {"success": removed, "userCount": len(self.users)}
        if operation == "listUsers":
            return {"success": True, "users": self.users, "count": len(self.users)}
        if operation == "createDocument":
            self.counter += 1
            doc = {"id": f"doc-{self.tenant}-{self.counter}", "title": data["title"], "content": data["content"],
                   "createdAt": int(time.time() * 1000), "createdBy": data.get("userId", "unknown")}
            self.documents[doc["id"]] = doc
            return {"success": True, "document": doc}
        if operation == "getDocument":
            doc = self.documents.get(data["documentId"])
            return {"success": True, "document": doc, "found": doc is not None}
        if operation == "listDocuments":
            return {"success": True, "documents": list(self.documents.values()), "count": len(self.documents)}
        if operation == "search":
            query = data["query"].lower()
            results = [d for d in self.documents.values()
                       if query in d["title"].lower() or query in d["content"].lower()]
            return {"success": True, "results": results, "count": len(results)}
        if operation == "getStats":
            return {"success": True, "tenantId": self.tenant, "uuid": self.uuid, "userCount": len(self.users),
                    "documentCount": len(self.documents), "users": self.users}
        return {"success": False, "error": "Unknown operation"}

    def terminate(self):
        print(f"[Workspace] tenant {self.tenant} workspace terminated")


def main():
    print("=== Multi-tenant container management ===\n")
    with ExitStack() as stack:  # closes in reverse: references, client, agent, server
        server = stack.enter_context(hulynet.Server("127.0.0.1", 0))
        agent = stack.enter_context(hulynet.Agent([TenantWorkspace], uuid="workspace-agent"))
        client = stack.enter_context(hulynet.Client("127.0.0.1", server.port))
        client.wait(timeout=5)
        client.serve_agent(agent)

        def workspace(tenant):
            return stack.enter_context(client.get("tenant-workspace", labels=[tenant], extra={"tenantId": tenant}))

        print("=== tenant ACME ===")
        acme = workspace("tenant-acme")
        acme.request("addUser", {"userId": "alice@acme.com"})
        acme.request("addUser", {"userId": "bob@acme.com"})
        acme.request("createDocument", {"userId": "alice@acme.com", "title": "Q1 Financial Report",
                                        "content": "Revenue increased by 25%..."})
        acme.request("createDocument", {"userId": "bob@acme.com", "title": "Product Roadmap",
                                        "content": "Feature releases planned for..."})
        acme_stats = acme.request("getStats")
        print("ACME:", acme_stats)

        print("\n=== tenant Globex ===")
        globex = workspace("tenant-globex")
        for user in ("charlie@globex.com", "diana@globex.com", "eve@globex.com"):
            globex.request("addUser", {"userId": user})
        globex.request("createDocument", {"userId": "charlie@globex.com", "title": "Marketing Strategy 2024",
                                          "content": "Focus on digital channels..."})
        globex_stats = globex.request("getStats")
        print("Globex:", globex_stats)

        print("\n=== tenant StartupXYZ ===")
        startup = workspace("tenant-startupxyz")
        startup.request("addUser", {"userId": "founder@startupxyz.com"})
        startup.request("createDocument", {"userId": "founder@startupxyz.com", "title": "MVP Specs",
                                           "content": "Build minimum viable product with..."})
        startup_stats = startup.request("getStats")
        print("StartupXYZ:", startup_stats)

        print("\n=== the same label reaches the same workspace ===")
        again = workspace("tenant-acme")
        print(f"ACME again: {again.uuid} (first: {acme.uuid})")
        assert again.uuid == acme.uuid
        assert len({acme.uuid, globex.uuid, startup.uuid}) == 3

        print("\n=== tenant isolation ===")
        for name, ref in (("ACME", acme), ("Globex", globex), ("StartupXYZ", startup)):
            docs = ref.request("listDocuments")["documents"]
            print(f"{name} documents:", ", ".join(f"{d['title']} (by {d['createdBy']})" for d in docs))
        found = acme.request("search", {"query": "report"})
        print(f"search 'report' in ACME: {found['count']} result(s)")
        assert found["count"] == 1 and globex.request("search", {"query": "report"})["count"] == 0

        print("\n=== the network's view ===")
        for record in sorted(client.list("tenant-workspace"), key=lambda r: r["labels"]):
            print(f"  {record['uuid']}  labels={record['labels']}  extra={record.get('extra')}")

        assert (acme_stats["userCount"], acme_stats["documentCount"]) == (2, 2)
        assert (globex_stats["userCount"], globex_stats["documentCount"]) == (3, 1)
        assert (startup_stats["userCount"], startup_stats["documentCount"]) == (1, 1)
        print("\nsummary:")
        for name, stats in (("ACME", acme_stats), ("Globex", globex_stats), ("StartupXYZ", startup_stats)):
            print(f"  {name:11} {stats['userCount']} users, {stats['documentCount']} docs")
    print("\nexample completed successfully: each tenant saw only its own data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
