#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
@testable import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import XCTest

/// CURVE on real sockets: who is admitted, who gets nothing, the allow list read again without a
/// restart, and what crosses the wire (a relay in the middle records every byte).
final class SecurityTests: IntegrationTestCase {
    private var directory = ""

    override func setUp() {
        super.setUp()
        var template = Array("/tmp/hulynet-keys-XXXXXX".utf8CString)
        directory = mkdtemp(&template).map { String(cString: $0) } ?? "/tmp"
        let directory = directory
        addTeardownBlock { _ = directory.isEmpty ? 0 : system("rm -rf '\(directory)'") }
    }

    private func keys(_ name: String) throws -> CurveKeyPair {
        try KeyFiles.generate(name: name, directory: directory)
    }

    /// `names` may carry rules after the name: "alice kinds=echo tenant=t1".
    private func writeAllowList(_ names: [String]) throws {
        var text = "# who may use the test network\n"
        for line in names {
            let words = line.split(separator: " ")
            let pub = try String(contentsOfFile: "\(directory)/\(words[0]).pub", encoding: .utf8)
            text += pub.dropLast() + words.dropFirst().map { " " + $0 }.joined() + "\n"
        }
        // Written aside and renamed: the server never reads half a file.
        try text.write(toFile: "\(directory)/allow.txt", atomically: true, encoding: .utf8)
    }

    private func securedServer(allowList: Bool = true) async throws -> (NetworkServer, CurveKeyPair) {
        let serverKeys = try keys("server")
        var configuration = NetworkServer.Configuration(host: "127.0.0.1", port: 0, timeouts: testTimeouts,
                                                        logger: testLogger("test.server"))
        configuration.security = ServerSecurity(keys: serverKeys, allowListPath: allowList ? "\(directory)/allow.txt" : nil)
        let server = try NetworkServer(configuration)
        cleanup.add(server)
        return (server, serverKeys)
    }

    private func client(port: Int, keys: CurveKeyPair?, serverKey: String?) throws -> NetworkClient {
        var options = NetworkClient.Options(timeouts: testTimeouts, getTimeoutMs: 5000, logger: testLogger("test.client"))
        if let serverKey { options.security = ClientSecurity(keys: try keys ?? CurveKeyPair.generate(), serverKey: serverKey) }
        let client = try NetworkClient(host: "127.0.0.1", port: port, options: options)
        cleanup.add(client)
        return client
    }

    func testKeyFiles() throws {
        let pair = try keys("alice")
        XCTAssertEqual(try KeyFiles.readSecret("\(directory)/alice.key"), pair)
        XCTAssertEqual(try KeyFiles.readPublic("\(directory)/alice.pub"), pair.publicKey)
        XCTAssertTrue(try String(contentsOfFile: "\(directory)/alice.pub", encoding: .utf8).hasSuffix(" alice\n"))
        var info = stat()
        XCTAssertEqual(stat("\(directory)/alice.key", &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "the secret key is its owner's only")
        XCTAssertThrowsError(try keys("alice"), "an existing key is never overwritten")
        XCTAssertThrowsError(try keys("a/b"))
        try "not a key\n".write(toFile: "\(directory)/bad.key", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try KeyFiles.readSecret("\(directory)/bad.key"))
        XCTAssertThrowsError(try KeyFiles.readSecret("\(directory)/nothing.key"))
        XCTAssertThrowsError(try KeyFiles.readPublic("\(directory)/nothing.pub"))
    }

    /// An admitted client works end to end through the coordinator and over an encrypted routed
    /// connection to the agent's endpoint, whose reference carries its public key.
    func testAdmittedClientsUseTheNetwork() async throws {
        let (alice, bob) = (try keys("alice"), try keys("bob"))
        try writeAllowList(["alice", "bob"])
        let (server, serverKeys) = try await securedServer()
        let agentSide = try client(port: server.port, keys: alice, serverKey: serverKeys.publicKey)
        try await agentSide.waitForConnection(timeoutMs: 3000)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let caller = try client(port: server.port, keys: bob, serverKey: serverKeys.publicKey)
        try await caller.waitForConnection(timeoutMs: 3000)
        let reference = try await caller.get(kind: "echo")
        XCTAssertEqual(try EndpointRef(parsing: reference.endpoint).publicKey, alice.publicKey)
        let answer = try await reference.request("echo", ["a": 1])
        XCTAssertEqual(answer, ["a": 1])
        let connection = try await reference.connect(timeoutMs: 3000)
        let direct = try await connection.request("echo", "over the endpoint")
        XCTAssertEqual(direct, "over the endpoint")
    }

    /// No key, a key not on the list, a wrong server key: refused, told why, and nothing arrives.
    func testStrangersAreRefusedAndGetNothing() async throws {
        let alice = try keys("alice")
        let mallory = try keys("mallory")
        try writeAllowList(["alice"])
        let (server, serverKeys) = try await securedServer()
        let cases: [(String, NetworkClient, String)] = [
            ("no key", try client(port: server.port, keys: nil, serverKey: nil), "handshake failed"),
            ("a key not on the list", try client(port: server.port, keys: mallory, serverKey: serverKeys.publicKey),
             "refused this client's key"),
            ("a wrong server key", try client(port: server.port, keys: alice, serverKey: mallory.publicKey), "handshake failed"),
        ]
        for (what, stranger, reason) in cases {
            let heard = Counter()
            let subscription = stranger.onUpdate { _ in _ = heard.increment() }
            do {
                try await stranger.waitForConnection(timeoutMs: 1500)
                XCTFail("\(what): connected")
            } catch {
                XCTAssertTrue("\(error)".contains(reason), "\(what): \(error)")
            }
            do {
                _ = try await stranger.agentList(timeoutMs: 300)
                XCTFail("\(what): answered")
            } catch {}
            XCTAssertEqual(heard.value, 0, "\(what): heard an event")
            subscription.cancel()
        }
        XCTAssertEqual(server.stats().clients, 0)
        XCTAssertTrue(server.metricsText().contains(#"hulynet_refusals_total{reason="key_not_allowed"}"#),
                      "refusals are counted by reason")
    }

    /// The allow list is read again when it changes: a key added is admitted, a key removed is
    /// refused on its next connection, with no restart.
    func testAllowListChangesTakeEffectWithoutARestart() async throws {
        let alice = try keys("alice")
        let mallory = try keys("mallory")
        try writeAllowList(["alice"])
        let (server, serverKeys) = try await securedServer()
        let refused = try client(port: server.port, keys: mallory, serverKey: serverKeys.publicKey)
        do { try await refused.waitForConnection(timeoutMs: 500); XCTFail("admitted before being listed") } catch {}

        try writeAllowList(["alice", "mallory"])
        let admitted = try client(port: server.port, keys: mallory, serverKey: serverKeys.publicKey)
        try await admitted.waitForConnection(timeoutMs: 5000)

        try writeAllowList(["mallory"])
        try await Task.sleep(nanoseconds: 1_200_000_000) // past the file's one-second look
        let removed = try client(port: server.port, keys: alice, serverKey: serverKeys.publicKey)
        do { try await removed.waitForConnection(timeoutMs: 1000); XCTFail("admitted after removal") } catch {
            XCTAssertTrue("\(error)".contains("refused"), "\(error)")
        }

        // Rules changed for a connected key take effect at once; a key removed is cut at once.
        _ = try await admitted.agentList(timeoutMs: 2000)
        try writeAllowList(["alice", "mallory kinds=nothing"])
        try await eventuallyAsync("mallory's new rules apply to its session") {
            (try? await admitted.kinds(timeoutMs: 500)) == []
        }
        try writeAllowList(["alice"])
        try await eventuallyAsync("mallory's session is cut") { server.stats().clients == 0 }
        do {
            _ = try await admitted.agentList(timeoutMs: 1000)
            XCTFail("a revoked key's session still answered")
        } catch {}
    }

    /// What crosses the wire: with CURVE, no byte of a request's payload or of the container's
    /// answer; without it (the control), both in plain text.
    func testNoPlaintextOnTheWireWithCurve() async throws {
        let marker = "secret-payload-\(makeUUID())"
        let alice = try keys("alice")
        try writeAllowList(["alice"])
        for secured in [true, false] {
            let server: NetworkServer
            var serverKey: String?
            if secured {
                let (securedServer, serverKeys) = try await securedServer()
                server = securedServer
                serverKey = serverKeys.publicKey
            } else {
                server = try await startServer()
            }
            let agentSide = try client(port: server.port, keys: alice, serverKey: serverKey)
            try await agentSide.waitForConnection(timeoutMs: 3000)
            try await agentSide.register(Agent(factories: ["echo": echoFactory()]))
            let relay = try TCPRelay(to: server.port)
            let caller = try client(port: relay.port, keys: alice, serverKey: serverKey)
            try await caller.waitForConnection(timeoutMs: 3000)
            let reference = try await caller.get(kind: "echo")
            let echoed = try await reference.request("echo", .string(marker))
            XCTAssertEqual(echoed, .string(marker))
            let seen = relay.stop()
            XCTAssertGreaterThan(seen.count, 100, "the relay carried the traffic")
            let plain = seen.firstRange(of: Array(marker.utf8)) != nil
            XCTAssertEqual(plain, !secured, secured ? "plaintext on the wire with CURVE" : "the control saw no plaintext")
        }
    }
}

extension SecurityTests {
    /// Two tenants on one network: each gets, lists, requests and hears only its own containers;
    /// the other's are refused naming the rule; an agent key may register only its kinds.
    func testTenantsSeeOnlyTheirOwnContainers() async throws {
        for name in ["agents", "one", "two"] { _ = try keys(name) }
        try writeAllowList(["agents agents=echo kinds=", "one kinds=echo tenant=t1 agents=", "two kinds=echo tenant=t2 agents="])
        let (server, serverKeys) = try await securedServer()
        func connected(_ name: String) async throws -> NetworkClient {
            let client = try client(port: server.port, keys: try KeyFiles.readSecret("\(directory)/\(name).key"),
                                    serverKey: serverKeys.publicKey)
            try await client.waitForConnection(timeoutMs: 3000)
            return client
        }
        let agentSide = try await connected("agents")
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let one = try await connected("one"), two = try await connected("two")
        let twoHeard = EventLog()
        let subscription = two.onUpdate { twoHeard.append($0) }
        defer { subscription.cancel() }

        let mine = try await one.get(kind: "echo", options: GetOptions(labels: ["t1"]))
        _ = try await two.get(kind: "echo", options: GetOptions(labels: ["t2"]))
        let answer = try await mine.request("echo", "mine")
        XCTAssertEqual(answer, "mine")
        let oneSees = try await one.list(kind: "echo").map(\.uuid)
        XCTAssertEqual(oneSees, [mine.uuid])
        let twoSees = try await two.list(kind: "echo")
        XCTAssertFalse(twoSees.contains { $0.uuid == mine.uuid })
        XCTAssertEqual(twoSees.count, 1)
        for (what, attempt) in [
            ("get by uuid", { _ = try await two.get(kind: "echo", options: GetOptions(uuid: mine.uuid, labels: ["t2"])) }),
            ("request", { _ = try await two.request(mine.uuid, operation: "echo", data: "theirs") }),
            ("get without the tenant's label", { _ = try await two.get(kind: "echo") }),
        ] as [(String, () async throws -> Void)] {
            do {
                try await attempt()
                XCTFail("\(what): allowed")
            } catch {
                XCTAssertEqual((error as? NetworkError)?.code, .forbidden, "\(what): \(error)")
                XCTAssertTrue("\(error)".contains("rule"), "\(what): \(error)")
            }
        }
        do {
            try await one.register(Agent(factories: ["echo": echoFactory()]))
            XCTFail("a tenant key registered an agent")
        } catch {
            XCTAssertTrue("\(error)".contains("rule agents="), "\(error)")
        }
        // Over the agent's endpoint: tenant two, knowing the endpoint and the uuid, is refused
        // both a connection and a request to tenant one's container; tenant one is not.
        let ref = try EndpointRef(parsing: mine.endpoint)
        for (client, expectRefusal) in [(two, true), (one, false)] {
            let calls: [(String, JSONValue)] = [(Method.connect, .object(["uuid": .string(mine.uuid)])),
                                                (Method.sendContainer, [.string(mine.uuid), "echo", "over the endpoint"])]
            for (method, params) in calls {
                let outcome: Result<[UInt8], NetworkError> = await withCheckedContinuation { continuation in
                    client.loop.executeUnchecked {
                        do {
                            let endpoint = try client.endpointClient(host: ref.host, port: ref.port, direct: false,
                                                                     publicKey: ref.publicKey)
                            endpoint.rpc.request(method: method, params: params, timeoutMs: 3000) {
                                continuation.resume(returning: $0.mapError(NetworkError.init))
                            }
                        } catch { continuation.resume(returning: .failure(error as? NetworkError ?? .closed)) }
                    }
                }
                switch (outcome, expectRefusal) {
                case (.failure(let error), true):
                    XCTAssertEqual(error.code, .forbidden, "\(method): \(error)")
                case (.success, false): break
                default: XCTFail("\(method) by \(client === two ? "tenant two" : "tenant one"): \(outcome)")
                }
            }
        }
        // Events: a new container of tenant one's is not heard by tenant two.
        let another = try await one.get(kind: "echo", options: GetOptions(uuid: "t1-\(makeUUID())", labels: ["t1"]))
        try await Task.sleep(nanoseconds: 300_000_000) // two ticks' worth of events
        XCTAssertTrue(twoHeard.containerChanges(another.uuid).isEmpty, "tenant two heard of tenant one's container")
        XCTAssertTrue(twoHeard.containerChanges(mine.uuid).isEmpty)
    }

    /// A key over its rate is told to retry, as with the in-flight limit: its requests all
    /// succeed, later, and the server counts the retries.
    func testRateLimitedKeyIsToldToRetry() async throws {
        for name in ["agents", "slow"] { _ = try keys(name) }
        try writeAllowList(["agents", "slow rate=50 burst=5"])
        let (server, serverKeys) = try await securedServer()
        let agentSide = try client(port: server.port, keys: try KeyFiles.readSecret("\(directory)/agents.key"),
                                   serverKey: serverKeys.publicKey)
        try await agentSide.waitForConnection(timeoutMs: 3000)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let slow = try client(port: server.port, keys: try KeyFiles.readSecret("\(directory)/slow.key"),
                              serverKey: serverKeys.publicKey)
        try await slow.waitForConnection(timeoutMs: 3000)
        let reference = try await slow.get(kind: "echo")
        let started = nowMs()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<30 { group.addTask { _ = try await reference.request("echo", .number(Double(index))) } }
            try await group.waitForAll()
        }
        let took = nowMs() - started
        XCTAssertGreaterThan(server.stats().rateLimited, 0, "some requests were told to retry")
        XCTAssertTrue(server.metricsText().contains(#"hulynet_retries_total{reason="rate_limit"}"#))
        XCTAssertGreaterThanOrEqual(took, 300, "30 requests at 50/s with a burst of 5 take about half a second")
    }

    /// A key cannot take over another key's session by saying hello with its client id.
    func testAnotherKeyCannotSayHelloAsAClient() async throws {
        for name in ["alice", "mallory"] { _ = try keys(name) }
        try writeAllowList(["alice", "mallory"])
        let (server, serverKeys) = try await securedServer()
        let alice = try client(port: server.port, keys: try KeyFiles.readSecret("\(directory)/alice.key"), serverKey: serverKeys.publicKey)
        try await alice.waitForConnection(timeoutMs: 3000)
        let socket = try ZMQSocket(type: .dealer)
        defer { socket.close() }
        try socket.makeCurveClient(try KeyFiles.readSecret("\(directory)/mallory.key"), serverKey: serverKeys.publicKey)
        try socket.connect("tcp://127.0.0.1:\(server.port)")
        _ = try socket.send([RPCOp.hello.frame, Array(alice.clientId.utf8), Array(#"{"aliveTimeout":30}"#.utf8), []], dontWait: false)
        var poller = ZMQPoller()
        poller.add(socket)
        XCTAssertEqual(try poller.poll(timeoutMs: 1000), 0, "mallory's hello as alice was answered")
        let agents = try await alice.agentList()
        XCTAssertEqual(agents.count, 0, "alice's session goes on")
    }
}

/// Polls `condition` every 20 ms for up to 5 s.
func eventuallyAsync(_ what: String, _ condition: () async -> Bool) async throws {
    let deadline = nowMs() + 5000
    while nowMs() < deadline {
        if await condition() { return }
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    XCTFail("not within 5 s: \(what)")
}

/// A TCP relay on 127.0.0.1 in front of a port: forwards both ways and records every byte, as a
/// capture of the link would.
final class TCPRelay: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var recorded: [UInt8] = []
    private var stopped = false
    private var sockets: [Int32] = []
    private let done = DispatchGroup()

    init(to target: Int) throws {
        self.target = target
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard ok, listen(listener, 8) == 0 else { throw NetworkError.bindFailed("relay") }
        port = Int(UInt16(bigEndian: address.sin_port))
        done.enter()
        DispatchQueue.global().async { [self] in acceptLoop(); done.leave() }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(target).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            guard connected else { close(client); close(upstream); continue }
            let open = lock.withLock { () -> Bool in
                guard !stopped else { return false }
                sockets += [client, upstream]
                return true
            }
            guard open else { close(client); close(upstream); return }
            for (from, to) in [(client, upstream), (upstream, client)] {
                done.enter()
                DispatchQueue.global().async { [self] in pump(from, to); done.leave() }
            }
        }
    }

    private func pump(_ from: Int32, _ to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress!, $0.count, 0) }
            guard count > 0 else { shutdown(to, Int32(SHUT_WR)); return }
            lock.withLock { recorded.append(contentsOf: buffer[..<count]) }
            var offset = 0
            while offset < count {
                let sent = buffer.withUnsafeBytes { send(to, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { return }
                offset += sent
            }
        }
    }

    /// Closes everything and returns what crossed.
    func stop() -> [UInt8] {
        let open = lock.withLock { () -> [Int32] in
            stopped = true
            return sockets
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
        _ = done.wait(timeout: .now() + 5)
        for fd in open { close(fd) }
        return lock.withLock { recorded }
    }
}

