import HulyNetCore
import HulyNetSync
import Instrumentation
import ServiceContextModule
import Tracing

// A tracer of hulynet's own for processes that have no OpenTelemetry SDK in Swift: the C API's
// span handler (hulynet_set_span_handler) hands its finished spans to C, C++ and Python hosts,
// which export them with their own SDK. Its spans carry W3C trace context and propagate through
// `traceparent` exactly as swift-otel's do, so a coordinator traced by either and agents traced
// by the other make one trace.

/// A 128-bit W3C trace id.
public struct TraceID: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Valid ids are not all zeros (W3C Trace Context).
    public var isValid: Bool { high != 0 || low != 0 }
    /// 32 lowercase hex digits.
    public var description: String { hex16(high) + hex16(low) }
}

/// A 64-bit W3C span id (a `traceparent`'s parent-id).
public struct SpanID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public var isValid: Bool { value != 0 }
    /// 16 lowercase hex digits.
    public var description: String { hex16(value) }
}

/// The context of one span as `traceparent` carries it.
public struct TraceContext: Hashable, Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    /// The trace-flags' sampled bit: spans of an unsampled trace are not recorded (but their
    /// context still propagates), as OpenTelemetry's default parent-based sampler does.
    public var sampled: Bool
    /// Whether it came from a peer (extracted) rather than from a span of this process.
    public var isRemote: Bool

    public init(traceID: TraceID, spanID: SpanID, sampled: Bool = true, isRemote: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampled = sampled
        self.isRemote = isRemote
    }
}

/// The W3C `traceparent` header: `00-<trace-id>-<parent-id>-<flags>`.
public enum TraceParent {
    public static let header = "traceparent"

    /// `version 00`, the ids in lowercase hex, flags `01` (sampled) or `00`.
    public static func format(_ context: TraceContext) -> String {
        "00-\(context.traceID)-\(context.spanID)-\(context.sampled ? "01" : "00")"
    }

    /// The context a peer's header names, or nil when it is not a valid `traceparent` (W3C
    /// Trace Context, level 1): two lowercase hex digits of version (not `ff`), a trace id of 32
    /// and a parent id of 16 lowercase hex digits, neither all zeros, and two of flags; version
    /// 00 is exactly 55 characters, a later version may go on after a `-`. A header that is not
    /// one is ignored by the caller (the span starts a new trace), never an error.
    public static func parse(_ text: String) -> TraceContext? {
        var text = text
        return text.withUTF8 { bytes -> TraceContext? in
            guard bytes.count >= 55, bytes[2] == dash, bytes[35] == dash, bytes[52] == dash,
                  let version = hexValue(bytes, 0, 2), version != 0xFF,
                  let high = hexValue(bytes, 3, 16), let low = hexValue(bytes, 19, 16),
                  let span = hexValue(bytes, 36, 16), let flags = hexValue(bytes, 53, 2) else { return nil }
            if version == 0 {
                guard bytes.count == 55 else { return nil }
            } else if bytes.count > 55, bytes[55] != dash {
                return nil
            }
            let trace = TraceID(high: high, low: low)
            let parent = SpanID(span)
            guard trace.isValid, parent.isValid else { return nil }
            return TraceContext(traceID: trace, spanID: parent, sampled: flags & 1 == 1, isRemote: true)
        }
    }

    private static let dash = UInt8(ascii: "-")

    /// `count` (at most 16) lowercase hex digits from `start`, or nil.
    private static func hexValue(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for index in start..<(start + count) {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil // uppercase too: the specification allows lowercase only
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }
}

/// 16 lowercase hex digits.
private func hex16(_ value: UInt64) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var bytes = [UInt8](repeating: 0, count: 16)
    var rest = value
    for index in stride(from: 15, through: 0, by: -1) {
        bytes[index] = digits[Int(rest & 0xF)]
        rest >>= 4
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Random trace and span ids, never all zeros, from an injectable source of random words (the
/// system's by default; a seeded one in tests).
public struct TraceIDGenerator: Sendable {
    private let next: @Sendable () -> UInt64

    public init(_ next: @escaping @Sendable () -> UInt64) { self.next = next }

    /// The system's random numbers.
    public static let system = TraceIDGenerator { UInt64.random(in: .min ... .max) }

    /// A generator replaying SplitMix64 from `seed`: the same ids every run.
    public static func seeded(_ seed: UInt64) -> TraceIDGenerator {
        let state = LockedRandom(SplitMix64(seed: seed))
        return TraceIDGenerator { state.next() }
    }

    public func traceID() -> TraceID {
        while true {
            let id = TraceID(high: next(), low: next())
            if id.isValid { return id }
        }
    }

    public func spanID() -> SpanID {
        while true {
            let id = SpanID(next())
            if id.isValid { return id }
        }
    }
}

private final class LockedRandom: @unchecked Sendable {
    private let lock = Lock()
    private var generator: SplitMix64
    init(_ generator: SplitMix64) { self.generator = generator }
    func next() -> UInt64 { lock.withLock { generator.next() } }
}

/// A span as it ended: what the tracer's sink receives.
public struct FinishedSpan: Sendable {
    /// OpenTelemetry's SpanKind numbers (so hosts pass them straight to their SDK).
    public enum Kind: Int32, Sendable {
        case `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5
    }

    /// OpenTelemetry's status codes.
    public enum StatusCode: Int32, Sendable {
        case unset = 0, ok = 1, error = 2
    }

    public enum Value: Sendable, Equatable {
        case string(String), int(Int64), double(Double), bool(Bool)
    }

    public struct Attribute: Sendable, Equatable {
        public let key: String
        public let value: Value
    }

    public var name: String
    public var context: TraceContext
    /// The parent's span id: none for the root of a trace.
    public var parentSpanID: SpanID?
    /// Whether the parent came from a peer (through `traceparent`).
    public var parentIsRemote: Bool
    public var kind: Kind
    /// Wall-clock times, nanoseconds since the Unix epoch.
    public var startNs: UInt64
    public var endNs: UInt64
    public var status: StatusCode
    public var statusMessage: String
    /// Sorted by key; at most `CallbackTracer.maxAttributes`, strings cut to
    /// `CallbackTracer.maxValueBytes` bytes (values may come from peers: a span's memory is bounded).
    public var attributes: [Attribute]

    public func attribute(_ key: String) -> Value? { attributes.first { $0.key == key }?.value }
}

/// A swift-distributed-tracing `Tracer` that hands each span, when it ends, to a sink closure.
/// The sink is called on the thread that ends the span (a coordinator's I/O thread, say): it
/// must return at once (queue the span, as the C API does).
public struct CallbackTracer: Tracer {
    public typealias Span = CallbackSpan

    public static let maxAttributes = 64
    public static let maxValueBytes = 1024

    let ids: TraceIDGenerator
    let isEnabled: @Sendable () -> Bool
    let sink: @Sendable (FinishedSpan) -> Void

    /// `isEnabled` is asked at each start: while it says no, spans are not recorded (and a
    /// parent's context passes through unchanged), at the cost of one call.
    public init(ids: TraceIDGenerator = .system, isEnabled: @escaping @Sendable () -> Bool = { true },
                sink: @escaping @Sendable (FinishedSpan) -> Void) {
        self.ids = ids
        self.isEnabled = isEnabled
        self.sink = sink
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> CallbackSpan {
        let parentContext = context()
        guard isEnabled() else { return CallbackSpan(passing: parentContext) }
        let parent = parentContext.hulynetTraceContext
        let own = TraceContext(traceID: parent?.traceID ?? ids.traceID(), spanID: ids.spanID(),
                               sampled: parent?.sampled ?? true)
        var spanContext = parentContext
        spanContext.hulynetTraceContext = own
        guard own.sampled else { return CallbackSpan(passing: spanContext) }
        let record = FinishedSpan(name: operationName, context: own, parentSpanID: parent?.spanID,
                                  parentIsRemote: parent?.isRemote ?? false, kind: FinishedSpan.Kind(kind),
                                  startNs: instant().nanosecondsSinceEpoch, endNs: 0, status: .unset,
                                  statusMessage: "", attributes: [])
        return CallbackSpan(record, context: spanContext, sink: sink)
    }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext,
                                                     using extractor: Extract) where Extract.Carrier == Carrier {
        // A malformed header from a peer is ignored: the next span starts a trace of its own.
        guard let header = extractor.extract(key: TraceParent.header, from: carrier),
              let remote = TraceParent.parse(header) else { return }
        context.hulynetTraceContext = remote
    }

    public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier,
                                                  using injector: Inject) where Inject.Carrier == Carrier {
        guard let own = context.hulynetTraceContext else { return }
        injector.inject(TraceParent.format(own), forKey: TraceParent.header, into: &carrier)
    }

    public func forceFlush() {}
}

extension FinishedSpan.Kind {
    init(_ kind: SpanKind) {
        switch kind {
        case .server: self = .server
        case .client: self = .client
        case .producer: self = .producer
        case .consumer: self = .consumer
        case .internal: self = .internal
        }
    }
}

private enum TraceContextKey: ServiceContextKey {
    typealias Value = TraceContext
    static var nameOverride: String? { "hulynet-trace-context" }
}

extension ServiceContext {
    /// The W3C context of the span this context is about (its own, or a peer's after extract).
    public var hulynetTraceContext: TraceContext? {
        get { self[TraceContextKey.self] }
        set { self[TraceContextKey.self] = newValue }
    }
}

/// A span of `CallbackTracer`. Thread-safe: attributes may be set and the span ended from any
/// thread; only the first end counts.
public final class CallbackSpan: Tracing.Span, @unchecked Sendable {
    public let context: ServiceContext
    private let lock = Lock()
    private var record: FinishedSpan? // nil once ended, and for a span that is not recorded
    private let sink: (@Sendable (FinishedSpan) -> Void)?
    private var attributeValues = SpanAttributes()
    private var name: String

    init(_ record: FinishedSpan, context: ServiceContext, sink: @escaping @Sendable (FinishedSpan) -> Void) {
        self.record = record
        self.context = context
        self.sink = sink
        name = record.name
    }

    /// Not recorded: carries `context` on (a parent's, or an unsampled trace's) and ends with nothing.
    init(passing context: ServiceContext) {
        record = nil
        self.context = context
        sink = nil
        name = ""
    }

    public var isRecording: Bool { lock.withLock { record != nil } }

    public var operationName: String {
        get { lock.withLock { name } }
        set { lock.withLock { name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { lock.withLock { attributeValues } }
        set { lock.withLock { if record != nil { attributeValues = newValue } } }
    }

    public func setStatus(_ status: SpanStatus) {
        lock.withLock {
            guard record != nil else { return }
            // OpenTelemetry's rule: Ok is final, and a message goes with Error only.
            if record!.status == .ok { return }
            switch status.code {
            case .ok:
                record!.status = .ok
                record!.statusMessage = ""
            case .error:
                record!.status = .error
                record!.statusMessage = CallbackSpan.bounded(status.message ?? "")
            }
        }
    }

    // Events, errors and links are not part of the record handed to hosts (hulynet's own spans
    // use none): accepted and dropped.
    public func addEvent(_ event: SpanEvent) {}
    public func recordError<Instant: TracerInstant>(_ error: Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {}
    public func addLink(_ link: SpanLink) {}

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let finished = lock.withLock { () -> FinishedSpan? in
            guard var done = record else { return nil }
            record = nil
            done.name = name
            done.endNs = max(done.startNs, instant().nanosecondsSinceEpoch)
            done.attributes = CallbackSpan.flatten(attributeValues)
            return done
        }
        if let finished { sink?(finished) }
    }

    /// Typed values, sorted by key, bounded. Arrays (which hulynet's spans do not use) become
    /// their JSON text.
    static func flatten(_ attributes: SpanAttributes) -> [FinishedSpan.Attribute] {
        var result: [FinishedSpan.Attribute] = []
        attributes.forEach { key, attribute in
            let value: FinishedSpan.Value
            switch attribute {
            case .int32(let number): value = .int(Int64(number))
            case .int64(let number): value = .int(number)
            case .double(let number): value = .double(number)
            case .bool(let flag): value = .bool(flag)
            case .string(let text): value = .string(bounded(text))
            case .stringConvertible(let item): value = .string(bounded(item.description))
            case .int32Array(let items): value = .string(bounded(json(.array(items.map { .number(Double($0)) }))))
            case .int64Array(let items): value = .string(bounded(json(.array(items.map { .number(Double($0)) }))))
            case .doubleArray(let items): value = .string(bounded(json(.array(items.map { .number($0) }))))
            case .boolArray(let items): value = .string(bounded(json(.array(items.map { .bool($0) }))))
            case .stringArray(let items): value = .string(bounded(json(.array(items.map { .string($0) }))))
            case .stringConvertibleArray(let items): value = .string(bounded(json(.array(items.map { .string($0.description) }))))
            default: return
            }
            result.append(FinishedSpan.Attribute(key: bounded(key), value: value))
        }
        result.sort { $0.key < $1.key }
        if result.count > CallbackTracer.maxAttributes { result.removeLast(result.count - CallbackTracer.maxAttributes) }
        return result
    }

    private static func json(_ value: JSONValue) -> String { value.serializedString() }

    /// At most maxValueBytes of UTF-8, cut at a character boundary.
    static func bounded(_ text: String) -> String {
        let bytes = text.utf8
        guard bytes.count > CallbackTracer.maxValueBytes else { return text }
        var end = bytes.index(bytes.startIndex, offsetBy: CallbackTracer.maxValueBytes)
        while end > bytes.startIndex, bytes[end] & 0xC0 == 0x80 { end = bytes.index(before: end) } // a continuation byte
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}

/// The process's tracer, once: swift-distributed-tracing can be bootstrapped once per process
/// (a second bootstrap traps), so a caller that wants a `CallbackTracer` asks here.
public enum CallbackTracerBootstrap {
    private static let lock = Lock()
    nonisolated(unsafe) private static var installed = false

    /// Bootstraps `make()` unless a tracer is there already. True when the process's tracer is
    /// (now) the one made here; false when another was bootstrapped first (by a Swift program
    /// with swift-otel, say), which keeps its spans. A program that bootstraps a tracer itself
    /// must do so before asking here, or not at all.
    public static func bootstrapOnce(_ make: () -> CallbackTracer) -> Bool {
        lock.withLock {
            if installed { return true }
            guard InstrumentationSystem.tracer is NoOpTracer else { return false }
            InstrumentationSystem.bootstrap(make())
            installed = true
            return true
        }
    }
}
