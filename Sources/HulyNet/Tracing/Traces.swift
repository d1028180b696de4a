import HulyNetCore
import Instrumentation
import ServiceContextModule
import Tracing

/// Spans of the coordinator and the agents through swift-distributed-tracing, for whatever
/// tracer the process bootstrapped (`hulynet-otel` bootstraps an OTLP exporter; see
/// docs/OBSERVABILITY.md). With none bootstrapped, `tracer` is nil and nothing is done: the
/// shells look once, when they start.
///
/// A coordinator's span of a request goes to the agent as the tracer's propagation headers (W3C
/// `traceparent` with an OpenTelemetry tracer) in a trailing element of the forwarded call
/// (hulynet's own; a TypeScript agent ignores it), and the agent's span is its child, so one
/// trace shows both.
enum Traces {
    /// The process's tracer, or nil when none was bootstrapped.
    static var tracer: (any Tracer)? {
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : tracer
    }

    /// A span whose parent the propagation `headers` (from the wire) name, if any.
    static func start(_ tracer: any Tracer, _ name: String, kind: SpanKind, parent headers: [String: String]? = nil,
                      attributes: [(String, String)] = []) -> any Span {
        var context = ServiceContext.topLevel
        if let headers { tracer.extract(headers, into: &context, using: HeaderCarrier()) }
        let span = tracer.startAnySpan(name, context: context, ofKind: kind)
        for (key, value) in attributes { span.attributes[key] = value }
        return span
    }

    /// The span's context as propagation headers, for the next hop (nil if the tracer writes none).
    static func headers(of span: any Span, _ tracer: any Tracer) -> [String: String]? {
        var headers: [String: String] = [:]
        tracer.inject(span.context, into: &headers, using: HeaderCarrier())
        return headers.isEmpty ? nil : headers
    }

    /// Headers read from the wire: a JSON object of strings (anything else: none).
    static func headers(_ value: JSONValue?) -> [String: String]? {
        guard case .object(let object)? = value else { return nil }
        let headers = object.compactMapValues(\.stringValue)
        return headers.isEmpty ? nil : headers
    }

    /// Ends a span with the outcome of what it covered.
    static func end(_ span: any Span, error: RemoteError?) {
        if let error {
            span.attributes["hulynet.error.code"] = error.code?.rawValue ?? "app"
            span.setStatus(SpanStatus(code: .error, message: String(error.message.prefix(200))))
        }
        span.end()
    }
}

/// W3C trace context headers in a dictionary.
struct HeaderCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }

    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}
