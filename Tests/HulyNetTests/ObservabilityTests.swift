import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import XCTest

// Metrics and health over real sockets: a known workload through a coordinator, then its
// `/metrics` scraped with a plain HTTP request on 127.0.0.1; `/health`; and hostile HTTP input.

final class ObservabilityTests: IntegrationTestCase {

    func testAScrapeAfterAKnownWorkloadShowsItsCounts() async throws {
        var configuration = NetworkServer.Configuration(host: "127.0.0.1", port: 0, timeouts: testTimeouts,
                                                        logger: testLogger("test.server"))
        configuration.metricsPort = 0
        let server = try NetworkServer(configuration)
        cleanup.add(server)
        let metricsPort = try XCTUnwrap(server.metricsPort)

        let agentMetrics = MetricsRegistry()
        let agentSide = try await makeClient(port: server.port)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()], metrics: agentMetrics))
        let client = try await makeClient(port: server.port)

        // One get-or-start, 20 requests through the coordinator and one that fails.
        let echo = try await client.get(kind: "echo", options: GetOptions(labels: ["metrics"]))
        for index in 0..<20 {
            let answer = try await echo.request("echo", ["n": .number(Double(index))])
            XCTAssertEqual(answer.member("n"), .number(Double(index)))
        }
        _ = await remoteErrorMessage { try await echo.request("fail", "on purpose") }

        let scrape = try HTTPProbe.get(port: metricsPort, path: "/metrics")
        XCTAssertEqual(scrape.status, 200)
        XCTAssertEqual(scrape.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        let metrics = PrometheusText(scrape.body)
        XCTAssertEqual(metrics[#"hulynet_requests_total{method="cs"}"#], 21)
        XCTAssertEqual(metrics[#"hulynet_request_errors_total{method="cs"}"#], 1)
        XCTAssertEqual(metrics[#"hulynet_request_duration_seconds_count{method="cs"}"#], 21)
        XCTAssertEqual(metrics[#"hulynet_request_duration_seconds_bucket{method="cs",le="+Inf"}"#], 21)
        XCTAssertEqual(metrics[#"hulynet_requests_total{method="gg"}"#], 1)
        XCTAssertEqual(metrics[#"hulynet_request_errors_total{method="gg"}"#], 0)
        XCTAssertEqual(metrics[#"hulynet_request_duration_seconds_count{method="gg"}"#], 1)
        XCTAssertEqual(metrics[#"hulynet_get_or_start_total{outcome="to_agent"}"#], 1)
        XCTAssertEqual(metrics[#"hulynet_get_or_start_total{outcome="found"}"#], 0)
        XCTAssertEqual(metrics[#"hulynet_containers{kind="echo"}"#], 1)
        XCTAssertEqual(metrics["hulynet_agents"], 1)
        XCTAssertEqual(metrics["hulynet_clients"], 2)
        XCTAssertEqual(metrics[#"hulynet_retries_total{reason="in_flight"}"#], 0)
        XCTAssertEqual(metrics[#"hulynet_malformed_messages_total{reason="frames"}"#], 0)
        XCTAssertEqual(metrics["hulynet_dead_agents_total"], 0)
        XCTAssertEqual(metrics["hulynet_failovers_total"], 0)
        let sum = try XCTUnwrap(metrics[#"hulynet_request_duration_seconds_sum{method="cs"}"#])
        XCTAssertGreaterThan(sum, 0)
        XCTAssertLessThan(sum, 21 * 5, "each within the request timeout")
        XCTAssertTrue(scrape.body.contains("# TYPE hulynet_request_duration_seconds histogram"))
        XCTAssertTrue(scrape.body.contains("# HELP hulynet_requests_total "))
        XCTAssertEqual(server.metricsText().isEmpty, false)

        // The agent's own registry: the requests its container handled.
        let agentText = PrometheusText(agentMetrics.prometheusText())
        XCTAssertEqual(agentText[#"hulynet_agent_requests_total{kind="echo"}"#], 21)
        XCTAssertEqual(agentText[#"hulynet_agent_request_errors_total{kind="echo"}"#], 1)
        XCTAssertEqual(agentText[#"hulynet_agent_request_duration_seconds_count{kind="echo"}"#], 21)
        XCTAssertEqual(agentText[#"hulynet_agent_containers{kind="echo"}"#], 1)

        // Another client's get of its uuid finds it; a malformed message is counted.
        let other = try await makeClient(port: server.port)
        _ = try await other.get(kind: "echo", options: GetOptions(uuid: echo.uuid))
        let raw = try makeRawPeer(port: server.port)
        try raw.send(["x", "id", "[]"])
        await eventually("the malformed message, the second get and the events are counted") {
            let again = PrometheusText(try HTTPProbe.get(port: metricsPort, path: "/metrics").body)
            return again[#"hulynet_malformed_messages_total{reason="frames"}"#] == 1
                && again[#"hulynet_get_or_start_total{outcome="found"}"#] == 1
                && again["hulynet_events_sent_total"] ?? 0 >= 2 // the agent's and the container's arrival, to 2 clients
        }

        let health = try HTTPProbe.get(port: metricsPort, path: "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.headers["content-type"], "application/json")
        XCTAssertEqual(try JSONValue.parse(Array(health.body.utf8)), ["status": "serving", "role": "single"])

        // Stopped, the server closes its metrics port too.
        server.stop()
        XCTAssertThrowsError(try HTTPProbe.get(port: metricsPort, path: "/health"))
    }

    /// The coordinator's own counts, driven without sockets: a refused registration, a dead agent
    /// and the failover of its container.
    func testTheCoordinatorCountsDeadAgentsFailoversAndRefusals() throws {
        let registry = MetricsRegistry()
        let coordinator = Coordinator(timeouts: Timeouts(aliveMs: 3000, unusedContainerMs: 5000, pingIntervalMs: 1000,
                                                         requestMs: 10000, tickMs: 100))
        coordinator.metrics = registry.networkMetrics()
        var out: [CoordinatorDirective] = []
        var now: Int64 = 100_000
        var token: RequestToken = 0
        func request(_ client: ClientUUID, _ method: String, _ params: JSONValue) {
            token += 1
            coordinator.clientConnected(client)
            coordinator.handle(client: client, token: token, method: method, params: params, now: now, into: &out)
        }
        func register(_ agent: AgentUUID, by client: ClientUUID) {
            request(client, Method.registerAgent, AgentRegistration(uuid: agent, containers: [], kinds: ["k"], endpoint: nil).json)
        }
        /// Gets u1 and answers the start call the coordinator sends; returns the agent asked.
        func getAndStart() throws -> AgentUUID {
            out.removeAll()
            request("user", Method.getContainer, ["kind": "k", "request": GetOptions(uuid: "u1").json])
            guard case .call(_, let id, let payload) = try XCTUnwrap(out.first(where: { if case .call = $0 { true } else { false } })),
                  let agent = try JSONValue.parse(payload)[1]?[0]?.stringValue else { throw NetworkError.invalid("no start call") }
            coordinator.callSucceeded(id, payload: Array(#"["u1","ep"]"#.utf8), now: now, into: &out)
            return agent
        }
        register("A", by: "a")
        register("B", by: "b")
        register("A", by: "intruder") // A belongs to a connected client: refused
        let first = try getAndStart()
        // The first agent's owner goes silent; the other and the user keep pinging.
        now += 3500
        for client in ["a", "b", "user", "intruder"] where client != (first == "A" ? "a" : "b") { coordinator.ping(client, now: now) }
        coordinator.tick(now: now, into: &out)
        let second = try getAndStart()
        XCTAssertNotEqual(first, second)
        coordinator.tick(now: now, into: &out)

        let text = PrometheusText(registry.prometheusText())
        XCTAssertEqual(text["hulynet_dead_agents_total"], 1)
        XCTAssertEqual(text["hulynet_failovers_total"], 1)
        XCTAssertEqual(text[#"hulynet_refusals_total{reason="agent_owner"}"#], 1)
        XCTAssertEqual(text[#"hulynet_get_or_start_total{outcome="to_agent"}"#], 2)
        XCTAssertEqual(text[#"hulynet_containers{kind="k"}"#], 1)
        XCTAssertEqual(text["hulynet_agents"], 1)
    }

    func testServersInOneProcessCountApart() async throws {
        let first = try await startServer()
        let second = try await startServer()
        let client = try await makeClient(port: first.port)
        _ = try await client.agentList()
        let firstText = PrometheusText(first.metricsText())
        let secondText = PrometheusText(second.metricsText())
        XCTAssertEqual(firstText[#"hulynet_requests_total{method="al"}"#], 1)
        XCTAssertEqual(secondText[#"hulynet_requests_total{method="al"}"#], 0)
        XCTAssertEqual(secondText["hulynet_clients"], 0)

        var quiet = NetworkServer.Configuration(host: "127.0.0.1", port: 0, logger: testLogger("test.server"))
        quiet.metrics = nil
        let withoutMetrics = try NetworkServer(quiet)
        cleanup.add(withoutMetrics)
        XCTAssertEqual(withoutMetrics.metricsText(), "")
    }

    func testHealthFollowsItsProviderAndOtherRequestsAreRefused() throws {
        let standby = Flag(true)
        let http = try MetricsHTTPServer(port: 0, logger: testLogger("test.metrics"),
                                         metrics: { Array("hulynet_x 1\n".utf8) },
                                         health: { standby.value ? .standby() : .serving(role: "leader") })
        defer { http.stop() }
        let waiting = try HTTPProbe.get(port: http.port, path: "/health")
        XCTAssertEqual(waiting.status, 503)
        XCTAssertEqual(try JSONValue.parse(Array(waiting.body.utf8)), ["status": "standby", "role": "standby"])
        standby.value = false
        XCTAssertEqual(try HTTPProbe.get(port: http.port, path: "/health").status, 200)
        XCTAssertEqual(try HTTPProbe.get(port: http.port, path: "/metrics?x=1").body, "hulynet_x 1\n")

        XCTAssertEqual(try HTTPProbe.exchange(port: http.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status, 405)
        XCTAssertEqual(try HTTPProbe.get(port: http.port, path: "/other").status, 404)
        let head = try HTTPProbe.exchange(port: http.port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, "")
        XCTAssertEqual(head.headers["connection"], "close")
    }

    func testHostileHTTPInputIsRefusedAndTheServerKeepsServing() throws {
        let http = try MetricsHTTPServer(port: 0, timeoutMs: 300, logger: testLogger("test.metrics"),
                                         metrics: { Array("hulynet_x 1\n".utf8) }, health: { .serving(role: "single") })
        defer { http.stop() }

        // A head over 8 KiB: 431, never buffered past the limit.
        let oversize = try HTTPProbe.exchange(port: http.port, "GET /" + String(repeating: "a", count: 20_000))
        XCTAssertEqual(oversize.status, 431)
        // Garbage, binary included: 400.
        XCTAssertEqual(try HTTPProbe.exchange(port: http.port, "\u{0}\u{1}\u{7f} nonsense\r\n\r\n").status, 400)
        XCTAssertEqual(try HTTPProbe.exchange(port: http.port, "GET metrics HTTP/1.1\r\n\r\n").status, 400)
        XCTAssertEqual(try HTTPProbe.exchange(port: http.port, "GET /metrics SPDY/3\r\n\r\n").status, 400)

        // A slow client that never finishes its head holds nothing up and is closed (408) once its time is up.
        let slow = try HTTPProbe.Connection(port: http.port)
        try slow.send("GET /metr")
        XCTAssertEqual(try HTTPProbe.get(port: http.port, path: "/health").status, 200, "served while the slow one waits")
        let started = nowMs()
        let slowAnswer = try slow.readAll(timeoutMs: 3000)
        XCTAssertTrue(slowAnswer.hasPrefix("HTTP/1.1 408"), slowAnswer)
        XCTAssertLessThan(nowMs() - started, 2000)

        // Silent connections past the cap wait in the backlog; once they time out, requests are served again.
        let silent = try (0..<(MetricsHTTPServer.maxConnections + 8)).map { _ in try HTTPProbe.Connection(port: http.port) }
        let afterSilent = try HTTPProbe.get(port: http.port, path: "/metrics", timeoutMs: 5000)
        XCTAssertEqual(afterSilent.status, 200)
        for connection in silent { connection.close() }

        // And a well-formed request still gets the metrics.
        XCTAssertEqual(try HTTPProbe.get(port: http.port, path: "/metrics").body, "hulynet_x 1\n")
    }
}

// MARK: - Helpers

private final class Flag<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The samples of a Prometheus text, by `name{labels}` as written.
struct PrometheusText {
    private var samples: [String: Double] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
    }

    subscript(_ key: String) -> Double? { samples[key] }
}

/// A plain HTTP/1.1 client over a TCP socket to 127.0.0.1, with a bound on every wait.
enum HTTPProbe {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    final class Connection {
        let fd: Int32

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket failed") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                Glibc.close(fd)
                throw Failure(description: "connect to \(port) failed: \(String(cString: strerror(errno)))")
            }
        }

        func send(_ text: String) throws {
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                // The server may answer (431) and close before it has read everything sent.
                if count <= 0 { return }
                offset += count
            }
        }

        /// Everything until the server closes, within `timeoutMs`.
        func readAll(timeoutMs: Int = 3000) throws -> String {
            var bytes: [UInt8] = []
            let deadline = MonotonicClock.nowMs() + Int64(timeoutMs)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let left = deadline - MonotonicClock.nowMs()
                guard left > 0 else { throw Failure(description: "no end of answer within \(timeoutMs) ms") }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, Int32(left))
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count == 0 { break }
                if count < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    if errno == ECONNRESET, !bytes.isEmpty { break }
                    throw Failure(description: "recv failed: \(String(cString: strerror(errno)))")
                }
                bytes.append(contentsOf: buffer[0..<count])
            }
            return String(decoding: bytes, as: UTF8.self)
        }

        func close() { Glibc.close(fd) }
        deinit { Glibc.close(fd) }
    }

    static func get(port: Int, path: String, timeoutMs: Int = 3000) throws -> Response {
        try exchange(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeoutMs: timeoutMs)
    }

    static func exchange(port: Int, _ request: String, timeoutMs: Int = 3000) throws -> Response {
        let connection = try Connection(port: port)
        try connection.send(request)
        let text = try connection.readAll(timeoutMs: timeoutMs)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "no head in \(text.prefix(200))") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
