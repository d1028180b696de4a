import HulyNet
import HulyNetCore
import HulyNetProcess
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// A network partition rather than a dead process: the agent runs in a network namespace of its
// own, joined to the host by a veth pair, and the link is cut (the host's end set down: packets
// are dropped, no connection is reset) and later restored. Needs root and iproute2's `ip netns`;
// skipped with a message elsewhere.

final class PartitionTests: ProcessTestCase {
    /// The agent's link is cut while callers use its containers (one through the coordinator,
    /// one over a routed connection to the agent's endpoint across the link): the network gives
    /// them to the agent on the host, the callers see no error. The link comes back: the cut-off
    /// agent learns the network dropped it, stops its copies and registers again with none, so
    /// no container runs twice.
    func testPartitionedAgentIsReplacedThenRejoinsWithoutItsCopies() async throws {
        let link = try VethLink.make()
        addAsyncCleanup { link.remove() }
        let (_, port) = try startServer(["--host", "0.0.0.0"])
        let cutOff = try startAgent(namespace: link.namespace, network: "\(link.hostAddress):\(port)",
                                    endpoint: "\(link.namespaceAddress):0")
        let label = "partition-\(makeUUID().prefix(8))"
        let uuid = "partition-\(makeUUID())"
        let viaNetwork = try startProbe(port: port, ["--label", label, "--rate", "100", "--duration", "12"])
        let viaConnection = try startProbe(port: port, ["--uuid", uuid, "--rate", "100", "--duration", "12", "--connection"])
        XCTAssertEqual(try ProbeReport(viaNetwork.output()).agentId, cutOff.uuid)
        XCTAssertEqual(try ProbeReport(viaConnection.output()).agentId, cutOff.uuid)
        let survivor = try startAgent(port: port)
        try waitForCalls(viaNetwork, atLeast: 50)

        let cutAt = ChildProcess.nowMs()
        try link.setHostEnd(up: false)
        let client = try await connectClient(port: port)
        try await eventuallyAsync("both containers run on the host's agent") {
            let containers = try await client.list(kind: "echo")
            return containers.filter { $0.uuid == uuid || $0.labels?.contains(label) == true }.map(\.agentId)
                == [survivor.uuid, survivor.uuid]
        }
        try link.setHostEnd(up: true)
        try cutOff.process.waitForLine(containing: "stopping them here", in: .stderr, timeoutMs: scaled(30_000))
        try await eventuallyAsync("the cut-off agent is registered again, with no containers") {
            try await client.agentList().first { $0.agentId == cutOff.uuid }?.containers == 0
        }

        for (probe, path) in [(viaNetwork, "coordinator"), (viaConnection, "connection")] {
            let report = try waitForDone(probe)
            XCTAssertEqual(report.errors.count, 0, "\(path): errors \(report.errors.prefix(3))")
            XCTAssertEqual(report.moves.count, 1, "\(path): moved once")
            let outage = try XCTUnwrap(report.outage(around: cutAt), path)
            print("FIGURE partition.agent path=\(path) first_success_after_cut_ms=\(outage.endedAt - cutAt) "
                  + "longest_wait_ms=\(outage.ms) errors=\(report.errors.count) calls=\(report.calls.count)")
        }
        let containers = try await client.list(kind: "echo")
        XCTAssertEqual(containers.filter { $0.uuid == uuid }.map(\.agentId), [survivor.uuid], "the uuid container runs once")
        XCTAssertEqual(containers.filter { $0.labels?.contains(label) == true }.map(\.agentId), [survivor.uuid],
                       "the labelled container runs once")
    }

    /// `hulynet agent` inside network namespace `namespace`.
    func startAgent(namespace: String, network: String, endpoint: String) throws -> AgentProcess {
        let process = try ChildProcess(executable: VethLink.ip, arguments: [
            "netns", "exec", namespace, try Self.hulynetExecutable(), "agent", "--network", network, "--endpoint", endpoint,
        ])
        addAsyncCleanup { process.kill() }
        let line = try process.waitForLine(containing: "serving", timeoutMs: scaled(10_000))
        let words = line.split(separator: " ")
        guard words.count > 1, words[0] == "agent" else { throw process.failure("no agent uuid in '\(line)'") }
        return AgentProcess(process: process, uuid: String(words[1]))
    }
}

/// A network namespace joined to the host by a veth pair on a /30 of its own; removed with all
/// it holds by `remove`. Skips the test where namespaces cannot be made (not root, no iproute2).
struct VethLink {
    static let ip = "/usr/sbin/ip"
    let namespace: String
    let hostEnd: String
    let hostAddress: String
    let namespaceAddress: String

    static func make() throws -> VethLink {
        guard getuid() == 0 else { throw XCTSkip("the partition test makes a network namespace: it needs root") }
        guard access(ip, X_OK) == 0 else { throw XCTSkip("the partition test needs \(ip) (Debian's iproute2)") }
        let tag = String(UInt32.random(in: 0...0xFFFF), radix: 16)
        let subnet = Int.random(in: 1...250)
        let link = VethLink(namespace: "hn-part-\(tag)", hostEnd: "hnh\(tag)", hostAddress: "10.231.\(subnet).1",
                            namespaceAddress: "10.231.\(subnet).2")
        let namespaceEnd = "hna\(tag)"
        do {
            try run(["netns", "add", link.namespace])
        } catch {
            throw XCTSkip("this machine cannot make a network namespace: \(error)")
        }
        do {
            try run(["link", "add", link.hostEnd, "type", "veth", "peer", "name", namespaceEnd])
            try run(["link", "set", namespaceEnd, "netns", link.namespace])
            try run(["addr", "add", "\(link.hostAddress)/30", "dev", link.hostEnd])
            try run(["link", "set", link.hostEnd, "up"])
            try run(["netns", "exec", link.namespace, ip, "addr", "add", "\(link.namespaceAddress)/30", "dev", namespaceEnd])
            try run(["netns", "exec", link.namespace, ip, "link", "set", namespaceEnd, "up"])
            try run(["netns", "exec", link.namespace, ip, "link", "set", "lo", "up"])
        } catch {
            link.remove()
            throw error
        }
        return link
    }

    /// Cuts the link (packets dropped, nothing reset) or restores it.
    func setHostEnd(up: Bool) throws {
        try Self.run(["link", "set", hostEnd, up ? "up" : "down"])
    }

    /// Removes the namespace (its end of the pair goes with it, and so the host's).
    func remove() {
        try? Self.run(["link", "del", hostEnd])
        try? Self.run(["netns", "del", namespace])
    }

    static func run(_ arguments: [String]) throws {
        let child = try ChildProcess(executable: ip, arguments: arguments)
        let status = child.waitForExit(timeoutMs: 10_000)
        guard status == .exited(0) else {
            throw ChildProcessError("ip \(arguments.joined(separator: " ")): \(status.map { "\($0)" } ?? "still running") \(child.output(.stderr))")
        }
    }
}
