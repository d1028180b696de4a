import Atomics
import CoreMetrics
import HulyNetCore

/// A histogram of durations in seconds, as a swift-metrics `RecorderHandler`, recorded with three
/// relaxed atomic additions and no lock: the request durations are recorded on the hot path,
/// and swift-prometheus's histogram (a lock, and every bucket at or above the value incremented)
/// cost several hundred instructions a request under callgrind. Buckets are kept apart and
/// summed when rendered; the sum is kept in nanoseconds.
final class LatencyHistogram: RecorderHandler, @unchecked Sendable {
    let name: String
    let labels: [(String, String)]
    let bounds: [Double]
    private let buckets: [ManagedAtomic<Int64>] // one per bound, and one past the last
    private let count = ManagedAtomic<Int64>(0)
    private let sumNs = ManagedAtomic<Int64>(0)

    init(name: String, labels: [(String, String)], bounds: [Double]) {
        self.name = name
        self.labels = labels
        self.bounds = bounds
        buckets = (0...bounds.count).map { _ in ManagedAtomic<Int64>(0) }
    }

    func record(_ value: Int64) { record(Double(value)) }

    /// `value`: seconds.
    func record(_ value: Double) {
        var index = 0
        while index < bounds.count, value > bounds[index] { index += 1 }
        buckets[index].wrappingIncrement(ordering: .relaxed)
        count.wrappingIncrement(ordering: .relaxed)
        let nanoseconds = value * 1e9
        sumNs.wrappingIncrement(by: nanoseconds.isFinite && nanoseconds > 0 ? Int64(min(nanoseconds, 9e18)) : 0,
                                ordering: .relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` lines (the `# HELP` and `# TYPE` lines are the caller's).
    func render(into text: inout String) {
        var labelText = ""
        for (key, value) in labels {
            labelText += "\(key)=\"\(Self.escaped(value))\","
        }
        var cumulative: Int64 = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += buckets[index].load(ordering: .relaxed)
            text += "\(name)_bucket{\(labelText)le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += buckets[bounds.count].load(ordering: .relaxed)
        let total = max(cumulative, count.load(ordering: .relaxed))
        let inner = labelText.isEmpty ? "" : "{\(labelText.dropLast())}"
        text += "\(name)_bucket{\(labelText)le=\"+Inf\"} \(total)\n"
        text += "\(name)_sum\(inner) \(Double(sumNs.load(ordering: .relaxed)) / 1e9)\n"
        text += "\(name)_count\(inner) \(total)\n"
    }

    /// A label value as the text format wants it: backslash, quote and newline escaped.
    static func escaped(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
