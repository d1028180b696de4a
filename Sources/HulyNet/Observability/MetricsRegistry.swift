import CoreMetrics
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Prometheus

/// Where a network server or an agent records its metrics, and their Prometheus text.
///
/// Metrics are per registry, and a registry is per `NetworkServer` or `Agent` unless shared on
/// purpose: each `NetworkServer.Configuration` makes a fresh one, so a process hosting several
/// servers (a test) reads each one's own counts; the CLI and the C API give each server its own
/// too, which is the process's whole network. Pass one registry to several objects to add their
/// counts up (`MetricsRegistry.shared` is there for that), or `nil` to record nothing.
///
/// Recording goes through swift-metrics' handlers (`NetworkMetrics`, `AgentMetrics`), made once
/// from `factory`; the text comes from swift-prometheus's registry behind it (counters and gauges)
/// and from hulynet's own lock-free histograms (`LatencyHistogram`: durations are recorded on
/// the hot path). Thread-safe.
public final class MetricsRegistry: Sendable {
    /// One registry for the whole process, for programs that want one `/metrics` for all their
    /// objects.
    public static let shared = MetricsRegistry()

    public let prometheus: PrometheusCollectorRegistry
    /// The swift-metrics factory that makes this registry's handlers.
    public let factory: any MetricsFactory
    private let histograms: HistogramStore

    public init() {
        let prometheus = PrometheusCollectorRegistry()
        let histograms = HistogramStore()
        self.prometheus = prometheus
        self.histograms = histograms
        factory = HelpfulPrometheusFactory(registry: prometheus, histograms: histograms)
    }

    /// Every metric recorded here in the Prometheus text format, version 0.0.4.
    public func prometheusText() -> String {
        var text = prometheus.emitToString()
        histograms.render(into: &text)
        return text
    }

    /// The same as UTF-8 bytes.
    public func prometheusBytes() -> [UInt8] { Array(prometheusText().utf8) }

    func networkMetrics() -> NetworkMetrics {
        NetworkMetrics(factory: factory, nowNs: { MonotonicClock.nowNs() })
    }

    func agentMetrics(kinds: [ContainerKind]) -> AgentMetrics {
        AgentMetrics(kinds: kinds, factory: factory)
    }
}

/// swift-prometheus's registry behind swift-metrics' API, with the `# HELP` lines and the
/// duration buckets of hulynet's own metrics (`MetricName`); swift-metrics itself carries
/// neither. One help text per name, always the same, as the registry requires.
struct HelpfulPrometheusFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let histograms: HistogramStore
    static let buckets: [Duration] = MetricName.durationBuckets.map { .nanoseconds(Int64(($0 * 1e9).rounded())) }

    private func named(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricName.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: named(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: named(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            return histograms.histogram(name: label, labels: dimensions)
        }
        return registry.makeGauge(descriptor: named(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: named(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: named(label), labels: dimensions, buckets: Self.buckets)
    }

    // hulynet's handles live as long as their registry: nothing to take out of it.
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// The `LatencyHistogram`s of one registry, one per name and labels, rendered after swift-
/// prometheus's families.
final class HistogramStore: @unchecked Sendable {
    private let lock = Lock()
    private var byKey: [String: LatencyHistogram] = [:]
    private var names: [String] = []
    private var byName: [String: [LatencyHistogram]] = [:]

    func histogram(name: String, labels: [(String, String)]) -> LatencyHistogram {
        let key = name + "\u{0}" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: "\u{0}")
        return lock.withLock {
            if let existing = byKey[key] { return existing }
            let made = LatencyHistogram(name: name, labels: labels, bounds: MetricName.durationBuckets)
            byKey[key] = made
            if byName[name] == nil { names.append(name) }
            byName[name, default: []].append(made)
            return made
        }
    }

    func render(into text: inout String) {
        let families = lock.withLock { names.map { ($0, byName[$0] ?? []) } }
        for (name, histograms) in families {
            if let help = MetricName.help[name] { text += "# HELP \(name) \(help)\n" }
            text += "# TYPE \(name) histogram\n"
            for histogram in histograms { histogram.render(into: &text) }
        }
    }
}
