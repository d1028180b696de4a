import HulyNetCore

#if canImport(Glibc)
import Glibc
#endif

/// Work done in a measured time, and how long each piece took (when measured).
struct BenchCount: Sendable {
    var done = 0
    var nanoseconds: UInt64 = 0
    /// Each request's time from send to answer, nanoseconds (empty: not measured).
    var latencies: [UInt64] = []

    var perSecond: Double { nanoseconds == 0 ? 0 : Double(done) / (Double(nanoseconds) / 1e9) }

    /// Work of concurrent parties: their counts add up over the longest of their times.
    static func + (lhs: BenchCount, rhs: BenchCount) -> BenchCount {
        BenchCount(done: lhs.done + rhs.done, nanoseconds: max(lhs.nanoseconds, rhs.nanoseconds),
                   latencies: lhs.latencies + rhs.latencies)
    }

    /// The rate with the median and 99th percentile latency (microseconds) as notes.
    var sample: BenchSample {
        BenchSample(value: perSecond, notes: latencyNotes)
    }

    var latencyNotes: [(name: String, value: Double)] {
        guard !latencies.isEmpty else { return [] }
        let sorted = latencies.sorted()
        func at(_ share: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * share))]) / 1000 }
        return [("p50 us", at(0.5)), ("p99 us", at(0.99))]
    }
}

/// One measurement of a case: its figure, and side figures worth printing with it.
struct BenchSample: Sendable {
    var value: Double
    var notes: [(name: String, value: Double)] = []
}

/// A measured case. A rate is better higher and is compared as a share of its baseline; a cost
/// (CPU time per request) is better lower and is compared as a multiple of it.
struct BenchCase: Sendable {
    enum Kind: Sendable { case rate, cost }

    var name: String
    var bytes: Int?
    var unit: String
    var kind: Kind = .rate
    /// The key of the case this one is compared with, run for run.
    var baseline: String?
    var measure: @Sendable () async throws -> BenchSample

    var key: String { bytes.map { "\(name) [\($0) B]" } ?? name }
}

/// The samples of every case over the runs, and the figures drawn from them.
struct BenchResults {
    private(set) var cases: [BenchCase] = []
    private(set) var samples: [String: [BenchSample]] = [:]

    mutating func add(_ benchCase: BenchCase, _ sample: BenchSample) {
        if samples[benchCase.key] == nil { cases.append(benchCase) }
        samples[benchCase.key, default: []].append(sample)
    }

    /// The case's ratio to its baseline in each run where both were measured.
    func ratios(_ benchCase: BenchCase) -> [Double] {
        guard let baseline = benchCase.baseline, let base = samples[baseline], let own = samples[benchCase.key] else { return [] }
        return zip(own, base).compactMap { own, base in base.value > 0 ? own.value / base.value : nil }
    }

    /// The ratio of the latest run, for the progress line.
    func latestRatio(_ benchCase: BenchCase) -> Double? {
        guard let baseline = benchCase.baseline, let base = samples[baseline]?.last?.value, base > 0,
              let own = samples[benchCase.key]?.last?.value else { return nil }
        return own / base
    }

    static func ratioText(_ ratio: Double, _ benchCase: BenchCase) -> String {
        let baselineName = benchCase.baseline ?? ""
        switch benchCase.kind {
        case .rate: return "\(Int((ratio * 100).rounded())) % of \(baselineName)"
        case .cost: return "\(format(ratio, decimals: 2))x \(baselineName)"
        }
    }

    /// A table for people: median, spread, ratio to the baseline (median and range over the runs).
    func table(runs: Int, seconds: Double) -> String {
        var lines = ["case\tmedian\tmin-max\tunit\tratio to baseline (median, min-max over \(runs) run(s))"]
        for benchCase in cases {
            let values = samples[benchCase.key, default: []].map(\.value)
            let digits = benchCase.kind == .cost ? 2 : 0
            var line = "\(benchCase.key)\t\(format(median(values), decimals: digits))"
            line += "\t\(format(values.min() ?? 0, decimals: digits))-\(format(values.max() ?? 0, decimals: digits))\t\(benchCase.unit)"
            let ratios = self.ratios(benchCase)
            if !ratios.isEmpty {
                line += "\t" + Self.ratioText(median(ratios), benchCase)
                if ratios.count > 1 {
                    let low = ratios.min()!, high = ratios.max()!
                    line += benchCase.kind == .rate
                        ? " (\(Int((low * 100).rounded()))-\(Int((high * 100).rounded())) %)"
                        : " (\(format(low, decimals: 2))-\(format(high, decimals: 2))x)"
                }
            }
            for (name, _) in samples[benchCase.key, default: []].first?.notes ?? [] {
                let noted = samples[benchCase.key, default: []].compactMap { $0.notes.first { $0.name == name }?.value }
                line += "; \(name) \(format(median(noted), decimals: 0))"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The same for machines.
    func json(runs: Int, seconds: Double, settings: [String: JSONValue]) -> String {
        var rows: [JSONValue] = []
        for benchCase in cases {
            let own = samples[benchCase.key, default: []]
            let values = own.map(\.value)
            var row: [String: JSONValue] = [
                "case": .string(benchCase.name),
                "unit": .string(benchCase.unit),
                "values": .array(values.map { .number($0) }),
                "median": .number(median(values)),
                "min": .number(values.min() ?? 0),
                "max": .number(values.max() ?? 0),
            ]
            if let bytes = benchCase.bytes { row["bytes"] = .number(Double(bytes)) }
            let ratios = self.ratios(benchCase)
            if let baseline = benchCase.baseline, !ratios.isEmpty {
                row["baseline"] = .string(baseline)
                row["ratios"] = .array(ratios.map { .number($0) })
                row["ratio_median"] = .number(median(ratios))
                row["ratio_min"] = .number(ratios.min()!)
                row["ratio_max"] = .number(ratios.max()!)
            }
            var notes: [String: JSONValue] = [:]
            for (name, _) in own.first?.notes ?? [] {
                notes[name] = .array(own.compactMap { $0.notes.first { $0.name == name }.map { .number($0.value) } })
            }
            if !notes.isEmpty { row["notes"] = .object(notes) }
            rows.append(.object(row))
        }
        var top = settings
        top["runs"] = .number(Double(runs))
        top["seconds_per_case"] = .number(seconds)
        top["cases"] = .array(rows)
        return String(decoding: JSONValue.object(top).serialized(), as: UTF8.self)
    }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// `decimals` places, with thousands separated for whole numbers ("46,388").
func format(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    if decimals > 0 {
        let scale = Double((0..<decimals).reduce(1) { product, _ in product * 10 })
        let scaled = Int((value * scale).rounded())
        let fraction = String(abs(scaled) % Int(scale))
        let whole = scaled / Int(scale)
        return "\(value < 0 && whole == 0 ? "-" : "")\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }
    let digits = Array(String(Int(value.rounded()).magnitude))
    var grouped = ""
    for (index, digit) in digits.enumerated() {
        if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
        grouped.append(digit)
    }
    return (value < 0 ? "-" : "") + grouped
}

/// Progress for people, on standard error, so that standard output stays the result.
func progress(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
