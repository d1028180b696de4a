import CZeroMQ
import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetZMQ
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Coordinators that stand in for each other, elected through a real etcd (Debian's etcd-server,
// started here on loopback ports with its data in a temporary directory): three `hulynet server
// --etcd` processes, agents and `hulynet call` probes given all three addresses. kill -9 of the
// leader, SIGSTOP of the leader past its lease, etcd stopped and back.
//
// Each test prints a FIGURE line with what it measured; docs/HA.md quotes them.

final class HATests: ProcessTestCase {
    /// The lease TTL of these tests (the default of `hulynet server --etcd`).
    let ttlSeconds = 3

    // MARK: - The leader killed

    /// kill -9 of the leader with callers at 100 calls a second (through the coordinator, and over
    /// a routed connection) and 5 slow requests in flight: a standby leads, the calls succeed
    /// again within the TTL plus 2 s, no caller sees an error, each container runs once and each
    /// request runs once.
    func testLeaderKilledStandbyTakesOverWithoutErrors() async throws {
        let etcd = try startEtcd()
        let coordinators = try startCoordinators(3, etcd: etcd)
        let leader = try waitForOneLeader(coordinators)
        let network = coordinators.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        let agents = [try startAgent(network: network), try startAgent(network: network)]
        let label = "ha-\(makeUUID().prefix(8))"
        let uuid = "ha-\(makeUUID())"
        let viaNetwork = try startProbe(network: network, ["--label", label, "--rate", "100", "--duration", "12"])
        let viaConnection = try startProbe(network: network, ["--uuid", uuid, "--rate", "100", "--duration", "12", "--connection"])
        let slow = try startProbe(network: network, ["--label", "\(label)-slow", "--slow", "5", "--slow-ms", "2500"])
        try waitForCalls(viaNetwork, atLeast: 50)
        try waitForCalls(viaConnection, atLeast: 50)
        // Held through the failover, so that the slow container outlives its probe for the check.
        let watcher = try await connectClient(network: network)
        let slowReference = try await watcher.get(kind: "echo", options: GetOptions(uuid: try ProbeReport(slow.output()).uuid))

        let killedAt = ChildProcess.nowMs()
        leader.process.send(SIGKILL)
        let survivors = coordinators.filter { $0.port != leader.port }
        let next = try waitForOneLeader(survivors, timeoutMs: scaled((ttlSeconds + 5) * 1000))
        let electedAfter = ChildProcess.nowMs() - killedAt

        for (probe, path) in [(viaNetwork, "coordinator"), (viaConnection, "connection")] {
            let report = try waitForDone(probe)
            XCTAssertEqual(report.errors.count, 0, "\(path): errors \(report.errors.prefix(3))")
            // The longest stretch without a successful call around the kill (a routed connection
            // does not pass the coordinator and may see none).
            let outage = try XCTUnwrap(report.outage(around: killedAt), path)
            XCTAssertLessThanOrEqual(outage.ms, Int64(scaled((ttlSeconds + 2) * 1000)),
                                     "\(path): calls succeed again within the TTL plus 2 s")
            print("FIGURE ha.leader_kill path=\(path) longest_without_success_ms=\(outage.ms) "
                  + "new_leader_after_ms=\(electedAfter) errors=\(report.errors.count) calls=\(report.calls.count) "
                  + "max_call_ms=\(report.maxCallMs)")
        }
        let slowReport = try waitForDone(slow)
        XCTAssertEqual(slowReport.errors.count, 0, "slow calls: \(slowReport.errors)")
        XCTAssertEqual(slowReport.calls.count, 5)

        let client = try await connectClient(port: next.port)
        let runs = try await slowReference.request("runs")
        let containers = try await client.list(kind: "echo")
        for (what, matches) in [("labelled", { (record: ContainerRecord) in record.labels?.contains(label) == true }),
                                ("uuid", { $0.uuid == uuid })] as [(String, (ContainerRecord) -> Bool)] {
            XCTAssertEqual(containers.filter(matches).count, 1, "the \(what) container runs once")
        }
        let ranTwice = runs.member("done")?.objectValue?.values.filter { $0 != 1 }.count ?? -1
        XCTAssertEqual(runs.member("done"), .object((0..<5).reduce(into: [:]) { $0["k\($1)"] = 1 }),
                       "each slow request ran exactly once")
        let hosted = try await client.agentList().map(\.agentId).sorted()
        XCTAssertEqual(hosted, agents.map(\.uuid).sorted(), "both agents registered again with the new leader")
        print("FIGURE ha.leader_kill.exactly_once slow_in_flight=5 answered=\(slowReport.calls.count - slowReport.errors.count) "
              + "ran_twice=\(ranTwice) containers_running_twice=0")
    }

    // MARK: - The leader paused past its lease

    /// SIGSTOP of the leader for longer than the TTL: a standby leads meanwhile. After SIGCONT the
    /// old leader answers nothing (a hello sent to it while it was paused stays unanswered, and
    /// its port closes) and says it stands by.
    func testPausedLeaderDoesNotServeAfterWaking() async throws {
        let etcd = try startEtcd()
        let coordinators = try startCoordinators(3, etcd: etcd)
        let leader = try waitForOneLeader(coordinators)
        // A raw peer that greeted the leader, and says hello again while it is paused.
        let peer = try RawDealer(port: leader.port)
        let peerId = makeUUID()
        try peer.sendHello(clientId: peerId)
        XCTAssertNotNil(try peer.receive(timeoutMs: scaled(5000)), "the leader answers before the pause")

        leader.process.send(SIGSTOP)
        let pausedAt = ChildProcess.nowMs()
        let survivors = coordinators.filter { $0.port != leader.port }
        let next = try waitForOneLeader(survivors, timeoutMs: scaled((ttlSeconds + 5) * 1000))
        let electedAfter = ChildProcess.nowMs() - pausedAt
        try peer.sendHello(clientId: peerId)
        // Paused a while past the TTL, as a long GC pause or a frozen VM would be.
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let leadingLines = leader.process.leadingLines
        leader.process.send(SIGCONT)

        try leader.process.waitForLine(containing: "before it could expire", timeoutMs: scaled(5000))
        XCTAssertNil(try peer.receive(timeoutMs: scaled(1500)), "the woken leader answered a peer after its lease lapsed")
        XCTAssertEqual(leader.process.leadingLines, leadingLines, "it did not lead again")
        XCTAssertFalse(portAccepts(leader.port), "its port is closed")
        XCTAssertEqual(try currentLeaders(coordinators).map(\.port), [next.port], "one leader")
        print("FIGURE ha.leader_pause new_leader_after_ms=\(electedAfter) old_leader_answered_after_waking=0 leaders=1")
    }

    // MARK: - etcd lost

    /// etcd stopped: the leader stops serving within the TTL and says why; etcd back: one leader
    /// again, and clients given the list find it.
    func testEtcdLostLeaderStopsAndOneLeadsWhenItReturns() async throws {
        var etcd = try startEtcd()
        let coordinators = try startCoordinators(3, etcd: etcd)
        let leader = try waitForOneLeader(coordinators)
        // /health: 200 from the leader, 503 from the standbys, saying who leads.
        XCTAssertEqual(leader.health().0, 200, leader.health().1)
        for standby in coordinators where standby.port != leader.port {
            let (status, body) = standby.health()
            XCTAssertEqual(status, 503, body)
            XCTAssertTrue(body.contains(#""status":"standby""#) && body.contains("127.0.0.1:\(leader.port)"), body)
        }

        etcd.process.send(SIGKILL)
        _ = etcd.process.waitForExit(timeoutMs: scaled(5000))
        let lostAt = ChildProcess.nowMs()
        try leader.process.waitForLine(containing: "could not renew the etcd lease", timeoutMs: scaled(ttlSeconds * 1000 + 1000))
        let stoppedAfter = ChildProcess.nowMs() - lostAt
        XCTAssertLessThanOrEqual(stoppedAfter, Int64(scaled(ttlSeconds * 1000)), "stopped serving within the TTL")
        XCTAssertTrue(leader.process.output().contains("etcd:"), "its reason names etcd's error")
        XCTAssertFalse(portAccepts(leader.port), "it closed its port")
        XCTAssertEqual(try currentLeaders(coordinators).count, 0, "nobody serves without etcd")
        let (status, body) = leader.health()
        XCTAssertEqual(status, 503, "its health says it does not serve")
        XCTAssertTrue(body.contains("could not renew") && body.contains("etcd_error"), body)

        etcd = try startEtcd(reusing: etcd)
        let back = try waitForOneLeader(coordinators, timeoutMs: scaled((ttlSeconds + 5) * 1000))
        let network = coordinators.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        let client = try await connectClient(network: network)
        _ = try await client.agentList()
        XCTAssertEqual(client.addresses.count, 3)
        print("FIGURE ha.etcd_lost leader_stopped_after_ms=\(stoppedAfter) ttl_ms=\(ttlSeconds * 1000) leaders_after_return=1 "
              + "new_leader=\(back.port == leader.port ? "same" : "other")")
    }

    // MARK: - Helpers

    struct Etcd {
        let process: ChildProcess
        let clientPort: Int
        let peerPort: Int
        let dataDirectory: String
        var url: String { "http://127.0.0.1:\(clientPort)" }
    }

    struct Coordinator {
        let process: ChildProcess
        let port: Int
        let metricsPort: Int

        /// `GET /health`: the HTTP status and the body.
        func health() -> (Int, String) { httpGet(port: metricsPort, path: "/health") }
    }

    /// etcd on two free loopback ports with its data in a temporary directory (removed in
    /// tearDown); `reusing` starts it again on the same ports and data.
    func startEtcd(reusing previous: Etcd? = nil) throws -> Etcd {
        guard let binary = ["/usr/bin/etcd", "/usr/local/bin/etcd"].first(where: { (path: String) in access(path, X_OK) == 0 }) else {
            throw XCTSkip("etcd is not installed (Debian: apt-get install etcd-server; scripts/setup.sh installs it)")
        }
        let clientPort = try previous?.clientPort ?? freePort()
        let peerPort = try previous?.peerPort ?? freePort()
        let directory: String
        if let previous {
            directory = previous.dataDirectory
        } else {
            var template = Array("/tmp/hulynet-etcd-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw ChildProcessError("mkdtemp failed") }
            directory = String(cString: made)
            addTeardownBlock { _ = try? ChildProcess(executable: "/bin/rm", arguments: ["-rf", directory]).waitForExit(timeoutMs: 10_000) }
        }
        let client = "http://127.0.0.1:\(clientPort)", peer = "http://127.0.0.1:\(peerPort)"
        let process = try startProcess(binary, [
            "--name", "hulynet-test", "--data-dir", directory + "/data",
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "hulynet-test=\(peer)", "--log-level", "warn",
        ])
        try process.waitFor("etcd serving on \(client)", timeoutMs: scaled(15_000)) { portAccepts(clientPort) }
        return Etcd(process: process, clientPort: clientPort, peerPort: peerPort, dataDirectory: directory)
    }

    func startCoordinators(_ count: Int, etcd: Etcd) throws -> [Coordinator] {
        try (0..<count).map { _ in
            let port = try freePort()
            let metricsPort = try freePort()
            let process = try startHulynet(["server", "--host", "127.0.0.1", "--port", "\(port)", "--stats-interval", "0",
                                            "--etcd", etcd.url, "--lease-ttl", "\(ttlSeconds)",
                                            "--metrics-port", "\(metricsPort)"])
            return Coordinator(process: process, port: port, metricsPort: metricsPort)
        }
    }

    /// The coordinators whose last role line says they lead.
    func currentLeaders(_ coordinators: [Coordinator]) throws -> [Coordinator] {
        coordinators.filter { coordinator in
            guard coordinator.process.isRunning else { return false }
            let roles = coordinator.process.output().split(separator: "\n").filter {
                $0.hasPrefix("leading:") || $0.hasPrefix("standing by")
            }
            return roles.last?.hasPrefix("leading:") == true
        }
    }

    /// Waits until exactly one of `coordinators` leads and its port accepts connections.
    @discardableResult
    func waitForOneLeader(_ coordinators: [Coordinator], timeoutMs: Int? = nil) throws -> Coordinator {
        let deadline = ChildProcess.nowMs() + Int64(timeoutMs ?? scaled(15_000))
        while ChildProcess.nowMs() < deadline {
            let leaders = try currentLeaders(coordinators)
            XCTAssertLessThanOrEqual(leaders.count, 1, "two coordinators lead at once: \(leaders.map(\.port))")
            if leaders.count == 1, portAccepts(leaders[0].port) { return leaders[0] }
            usleep(20_000)
        }
        throw ChildProcessError("no single leader among \(coordinators.map(\.port)) within \(timeoutMs ?? scaled(15_000)) ms; "
                                + coordinators.map { "\($0.port): \($0.process.output().suffix(300))" }.joined(separator: " | "))
    }

    func startAgent(network: String) throws -> AgentProcess {
        let process = try startHulynet(["agent", "--network", network])
        let line = try process.waitForLine(containing: "serving", timeoutMs: scaled(10_000))
        let words = line.split(separator: " ")
        guard words.count > 1, words[0] == "agent" else { throw process.failure("no agent uuid in '\(line)'") }
        return AgentProcess(process: process, uuid: String(words[1]))
    }

    func startProbe(network: String, _ arguments: [String]) throws -> ChildProcess {
        let probe = try startHulynet(["call", "--network", network] + arguments)
        try probe.waitForLine(containing: #""event":"ready""#, timeoutMs: scaled(10_000))
        return probe
    }

    func connectClient(network: String) async throws -> NetworkClient {
        let client = try NetworkClient(address: network)
        addAsyncCleanup { await client.close() }
        try await client.waitForConnection(timeoutMs: Int64(scaled(10_000)))
        return client
    }
}

/// `GET path` on 127.0.0.1:`port`: the HTTP status and the body (0 and "" when nothing answers).
func httpGet(port: Int, path: String) -> (Int, String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return (0, "") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 3, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return (0, "") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard count > 0 else { break }
        answer += buffer[..<count]
    }
    let text = String(decoding: answer, as: UTF8.self)
    let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    let body = text.split(separator: "\r\n\r\n", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
    return (status, body)
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` now.
func portAccepts(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0 and released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ChildProcessError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw ChildProcessError("bind to port 0 failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

extension RawDealer {
    /// Says the protocol's hello by hand, as a client would.
    func sendHello(clientId: String) throws {
        try send([RPCOp.hello.frame, Array(clientId.utf8), Array(#"{"aliveTimeout":30}"#.utf8), []], timeoutMs: 1000)
    }
}

private extension ChildProcess {
    /// How many times it said it leads.
    var leadingLines: Int { output().split(separator: "\n").filter { $0.hasPrefix("leading:") }.count }
}
