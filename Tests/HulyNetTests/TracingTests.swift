@testable import HulyNet
import HulyNetCore
import InMemoryTracing
import Instrumentation
import Tracing
import XCTest

/// Spans through swift-distributed-tracing with an in-memory tracer bootstrapped in this test
/// process: the coordinator's span of a request and of a get-or-start, and the agent's spans as
/// their children (the context crosses the wire in the forwarded call). The OTLP export of the
/// same spans to a collector runs in scripts/otel-test.sh.
final class TracingTests: IntegrationTestCase {
    /// Bootstrapped once for the process: servers and clients made after it trace.
    static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    func testCoordinatorAndAgentSpansAreLinked() async throws {
        let tracer = Self.tracer
        tracer.clearAll()
        defer { tracer.clearAll() }
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let client = try await makeClient(port: server.port)
        let uuid = "traced-\(makeUUID())"
        _ = try await client.get(kind: "echo", options: GetOptions(uuid: uuid))
        _ = try await client.request(uuid, operation: "echo", data: "traced")
        do {
            _ = try await client.request(uuid, operation: "fail", data: "on purpose")
        } catch {}

        var spans: [FinishedInMemorySpan] = []
        try await eventuallyAsync("the four spans of the get and the request end") {
            spans = tracer.finishedSpans
            return ["hulynet.coordinator.get", "hulynet.agent.start", "hulynet.agent.request"].allSatisfy { name in
                spans.contains { $0.operationName == name }
            } && spans.filter { $0.operationName == "hulynet.coordinator.request" }.count >= 2
        }
        func pair(_ parentName: String, _ childName: String) throws -> (FinishedInMemorySpan, FinishedInMemorySpan) {
            let parent = try XCTUnwrap(spans.first { $0.operationName == parentName })
            let child = try XCTUnwrap(spans.first { $0.operationName == childName && $0.spanContext.parentSpanID == parent.spanContext.spanID },
                                      "\(childName) is a child of \(parentName)")
            return (parent, child)
        }
        let (get, start) = try pair("hulynet.coordinator.get", "hulynet.agent.start")
        XCTAssertEqual(get.traceID, start.traceID)
        let (request, run) = try pair("hulynet.coordinator.request", "hulynet.agent.request")
        XCTAssertEqual(request.traceID, run.traceID)
        XCTAssertNotEqual(request.traceID, get.traceID, "each request is a trace of its own")
        XCTAssertEqual(request.attributes["hulynet.container"]?.toSpanAttribute(), .string(uuid))
        XCTAssertEqual(run.attributes["hulynet.operation"]?.toSpanAttribute(), .string("echo"))
        // The failed request's spans say so.
        XCTAssertTrue(spans.contains { $0.operationName == "hulynet.coordinator.request" && $0.status?.code == .error })
    }
}
