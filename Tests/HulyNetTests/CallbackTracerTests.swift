@testable import HulyNet
import HulyNetCore
import HulyNetSync
import Tracing
import XCTest

/// The pure parts of `CallbackTracer` (the tracer behind the C API's span handler): `traceparent`
/// parsing and writing, id generation, and spans from start to the record its sink receives,
/// through the same `Traces` helpers the coordinator and the agents use. No socket and no
/// bootstrap (this process bootstraps an in-memory tracer in TracingTests); the spans of a real
/// coordinator and agent through the C API are checked by tests/c/test_spans.c.
final class CallbackTracerTests: XCTestCase {
    /// Finished spans, in the order they ended.
    final class Sink: @unchecked Sendable {
        private let lock = Lock()
        private var items: [FinishedSpan] = []
        func add(_ span: FinishedSpan) { lock.withLock { items.append(span) } }
        var spans: [FinishedSpan] { lock.withLock { items } }
    }

    func tracer(_ sink: Sink, seed: UInt64 = 7, enabled: @escaping @Sendable () -> Bool = { true }) -> CallbackTracer {
        CallbackTracer(ids: .seeded(seed), isEnabled: enabled) { sink.add($0) }
    }

    // MARK: traceparent

    func testTraceparentRoundTripsAndReadsTheSpecificationsExample() throws {
        let example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let context = try XCTUnwrap(TraceParent.parse(example))
        XCTAssertEqual(context.traceID.description, "4bf92f3577b34da6a3ce929d0e0e4736")
        XCTAssertEqual(context.spanID.description, "00f067aa0ba902b7")
        XCTAssertTrue(context.sampled)
        XCTAssertTrue(context.isRemote)
        XCTAssertEqual(TraceParent.format(context), example)

        let unsampled = try XCTUnwrap(TraceParent.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        XCTAssertFalse(unsampled.sampled)
        XCTAssertEqual(TraceParent.format(TraceContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3))),
                       "00-00000000000000010000000000000002-0000000000000003-01")
        // A later version may carry more after a dash; its first fields are read.
        XCTAssertEqual(TraceParent.parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")?.spanID,
                       SpanID(0x00f0_67aa_0ba9_02b7))
    }

    func testMalformedTraceparentIsIgnored() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let malformed = [
            "", "00", "garbage", String(valid.dropLast()), valid + "0", valid + "-x", // version 00 is exactly 55
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // trace id of zeros
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // span id of zeros
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // later version, no dash
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01", // not ASCII
            String(repeating: "0", count: 100_000),
        ]
        for text in malformed {
            XCTAssertNil(TraceParent.parse(text), "\(text.prefix(80)) is not a traceparent")
        }
    }

    /// Random near-misses (seeded: replayable): nothing traps, and whatever is accepted writes
    /// back with the ids it was read with.
    func testRandomHeadersNeverTrapAndWhatIsAcceptedRoundTrips() {
        var random = SplitMix64(seed: 10)
        let alphabet = Array("0123456789abcdefABCDEF--xz \u{0}é".unicodeScalars)
        let valid = Array("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".unicodeScalars)
        var accepted = 0
        for round in 0..<20_000 {
            var scalars: [Unicode.Scalar]
            if round % 2 == 0 { // a valid header with a few characters changed, added or removed
                scalars = valid
                for _ in 0...random.below(3) {
                    let index = random.below(scalars.count)
                    switch random.below(3) {
                    case 0: scalars[index] = alphabet[random.below(alphabet.count)]
                    case 1: scalars.insert(alphabet[random.below(alphabet.count)], at: index)
                    default: scalars.remove(at: index)
                    }
                }
            } else {
                scalars = (0..<random.below(70)).map { _ in alphabet[random.below(alphabet.count)] }
            }
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            guard let context = TraceParent.parse(text) else { continue }
            accepted += 1
            XCTAssertTrue(context.traceID.isValid && context.spanID.isValid, text)
            // The ids and dashes as read (the version and flags are written as 00 and 01/00).
            XCTAssertEqual(Array(TraceParent.format(context).utf8)[2..<53], Array(text.utf8)[2..<53], text)
            XCTAssertTrue(text.hasPrefix("00") ? text.utf8.count == 55 : text.utf8.count == 55 || Array(text.utf8)[55] == UInt8(ascii: "-"), text)
        }
        XCTAssertGreaterThan(accepted, 100, "the near-misses include valid headers")
    }

    // MARK: ids

    func testIdsAreRandomNeverZeroAndReplayableFromASeed() {
        let a = TraceIDGenerator.seeded(42), b = TraceIDGenerator.seeded(42)
        let first = (0..<100).map { _ in a.traceID() }
        XCTAssertEqual(first, (0..<100).map { _ in b.traceID() })
        XCTAssertEqual(Set(first).count, 100)
        XCTAssertTrue(first.allSatisfy { $0.description.count == 32 && $0.isValid })

        // A source that gives zeros first: the zeros are skipped, never used as an id.
        final class Words: @unchecked Sendable {
            let lock = Lock()
            var words: [UInt64] = [0, 0, 0, 5, 0, 9]
            func next() -> UInt64 { lock.withLock { words.isEmpty ? 1 : words.removeFirst() } }
        }
        let words = Words()
        let zeros = TraceIDGenerator { words.next() }
        XCTAssertEqual(zeros.traceID(), TraceID(high: 0, low: 5)) // (0,0) skipped, then (0,5)
        XCTAssertEqual(zeros.spanID(), SpanID(9))
        XCTAssertEqual(SpanID(0xab).description, "00000000000000ab")
    }

    // MARK: spans

    func testSpansAcrossAHopShareTheTraceAndNameTheirParent() throws {
        let coordinatorSide = Sink(), agentSide = Sink()
        let coordinator = tracer(coordinatorSide, seed: 1), agent = tracer(agentSide, seed: 2)
        let before = DefaultTracerClock.now.nanosecondsSinceEpoch

        // As the coordinator does: a root span, its headers go with the forwarded call.
        let request = Traces.start(coordinator, "hulynet.coordinator.request", kind: .server,
                                   attributes: [("hulynet.container", "c1"), ("hulynet.client", "u1")])
        request.attributes["count"] = 3
        request.attributes["ratio"] = 0.5
        request.attributes["flag"] = true
        request.attributes["list"] = ["a", "b"]
        let headers = try XCTUnwrap(Traces.headers(of: request, coordinator))
        let traceparent = try XCTUnwrap(headers[TraceParent.header])
        // The agent's span: a child of the header's span, in another tracer (another process).
        let run = Traces.start(agent, "hulynet.agent.request", kind: .server, parent: headers,
                               attributes: [("hulynet.operation", "echo")])
        Traces.end(run, error: RemoteError("it failed", code: .invalid))
        Traces.end(request, error: nil)
        request.end() // a second end is ignored

        let root = try XCTUnwrap(coordinatorSide.spans.first)
        let child = try XCTUnwrap(agentSide.spans.first)
        XCTAssertEqual(coordinatorSide.spans.count, 1)
        XCTAssertEqual(TraceParent.format(root.context), traceparent)
        XCTAssertEqual(root.name, "hulynet.coordinator.request")
        XCTAssertNil(root.parentSpanID)
        XCTAssertFalse(root.parentIsRemote)
        XCTAssertEqual(root.kind, .server)
        XCTAssertEqual(root.status, .unset)
        XCTAssertGreaterThanOrEqual(root.startNs, before)
        XCTAssertGreaterThanOrEqual(root.endNs, root.startNs)
        XCTAssertLessThanOrEqual(root.endNs, DefaultTracerClock.now.nanosecondsSinceEpoch)
        XCTAssertEqual(root.attributes.map(\.key), ["count", "flag", "hulynet.client", "hulynet.container", "list", "ratio"])
        XCTAssertEqual(root.attribute("count"), .int(3))
        XCTAssertEqual(root.attribute("ratio"), .double(0.5))
        XCTAssertEqual(root.attribute("flag"), .bool(true))
        XCTAssertEqual(root.attribute("hulynet.container"), .string("c1"))
        XCTAssertEqual(root.attribute("list"), .string("[\"a\",\"b\"]"))

        XCTAssertEqual(child.context.traceID, root.context.traceID)
        XCTAssertEqual(child.parentSpanID, root.context.spanID)
        XCTAssertTrue(child.parentIsRemote)
        XCTAssertNotEqual(child.context.spanID, root.context.spanID)
        XCTAssertEqual(child.status, .error)
        XCTAssertEqual(child.statusMessage, "it failed")
        XCTAssertEqual(child.attribute("hulynet.error.code"), .string("invalid"))
    }

    func testAMalformedHeaderFromAPeerStartsANewTrace() throws {
        let sink = Sink()
        let agent = tracer(sink)
        for header in ["nonsense", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""] {
            let span = Traces.start(agent, "hulynet.agent.request", kind: .server, parent: [TraceParent.header: header])
            span.end()
        }
        XCTAssertEqual(sink.spans.count, 3)
        XCTAssertTrue(sink.spans.allSatisfy { $0.parentSpanID == nil && $0.context.traceID.isValid })
        XCTAssertEqual(Set(sink.spans.map(\.context.traceID)).count, 3)
    }

    func testAnUnsampledParentIsNotRecordedButPropagates() throws {
        let sink = Sink()
        let agent = tracer(sink)
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        let span = Traces.start(agent, "hulynet.agent.request", kind: .server, parent: [TraceParent.header: header])
        XCTAssertFalse(span.isRecording)
        let next = try XCTUnwrap(Traces.headers(of: span, agent)?[TraceParent.header])
        XCTAssertTrue(next.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        XCTAssertTrue(next.hasSuffix("-00"))
        XCTAssertNotEqual(next, header, "a span of its own, not the parent's")
        span.end()
        XCTAssertTrue(sink.spans.isEmpty)
    }

    func testNothingIsRecordedWhileDisabled() throws {
        let sink = Sink()
        final class Flag: @unchecked Sendable {
            let lock = Lock()
            var on = false
            var value: Bool { lock.withLock { on } }
        }
        let flag = Flag()
        let disabled = tracer(sink, enabled: { flag.value })
        let root = Traces.start(disabled, "a", kind: .server)
        XCTAssertNil(Traces.headers(of: root, disabled), "no context to propagate")
        root.end()
        // A peer's context passes through unchanged.
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let child = Traces.start(disabled, "b", kind: .server, parent: [TraceParent.header: header])
        XCTAssertEqual(Traces.headers(of: child, disabled)?[TraceParent.header], header)
        child.end()
        XCTAssertTrue(sink.spans.isEmpty)

        flag.lock.withLock { flag.on = true }
        Traces.start(disabled, "c", kind: .client).end()
        XCTAssertEqual(sink.spans.map(\.name), ["c"])
        XCTAssertEqual(sink.spans.first?.kind, .client)
    }

    func testStatusAndValuesFollowOpenTelemetrysRulesAndAreBounded() throws {
        let sink = Sink()
        let tracer = tracer(sink)
        let span = Traces.start(tracer, "s", kind: .internal)
        span.setStatus(SpanStatus(code: .ok, message: "ignored"))
        span.setStatus(SpanStatus(code: .error, message: "too late")) // Ok is final
        let long = String(repeating: "é", count: CallbackTracer.maxValueBytes) // 2 bytes each
        span.attributes["a.long"] = long
        for index in 0..<(CallbackTracer.maxAttributes + 10) { span.attributes["k\(index)"] = index }
        span.operationName = "renamed"
        span.end()
        let record = try XCTUnwrap(sink.spans.first)
        XCTAssertEqual(record.name, "renamed")
        XCTAssertEqual(record.kind, .internal)
        XCTAssertEqual(record.status, .ok)
        XCTAssertEqual(record.statusMessage, "")
        XCTAssertEqual(record.attributes.count, CallbackTracer.maxAttributes)
        guard case .string(let cut)? = record.attribute("a.long") else { return XCTFail("a.long is a string (kept: the first keys in order are)") }
        XCTAssertEqual(cut.utf8.count, CallbackTracer.maxValueBytes)
        XCTAssertTrue(long.hasPrefix(cut), "cut at a character boundary")
        XCTAssertEqual(CallbackSpan.bounded(String(repeating: "a", count: CallbackTracer.maxValueBytes - 1) + "é").utf8.count,
                       CallbackTracer.maxValueBytes - 1, "a character is never split")
    }
}
