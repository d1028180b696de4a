/// Counts events that a peer can cause at will (malformed messages, oversize messages, dropped
/// sends) and turns them into at most one log line per interval, so that a flood of bad input
/// costs a few counters and a line every few seconds, never a line per message. The line holds
/// the counts per reason and one short sample of the input, escaped: a peer's bytes never reach
/// the log raw or unbounded.
///
/// Pure: the caller passes the time and logs the line it gets back.
public struct LogSummary: Sendable {
    public let intervalMs: Int64
    public let sampleBytes: Int

    private var counts: [String: Int] = [:]
    /// Reasons in the order first seen in this interval, for a stable line.
    private var reasons: [String] = []
    private var sample: String?
    private var lastLine: Int64?

    /// Everything counted since the start, per reason (for statistics).
    public private(set) var totals: [String: Int] = [:]

    public init(intervalMs: Int64 = 10_000, sampleBytes: Int = 48) {
        self.intervalMs = intervalMs
        self.sampleBytes = sampleBytes
    }

    /// Counts one event. `reason` is hulynet's own short text (never a peer's bytes); `input` is
    /// what the peer sent, of which the first event of an interval keeps a short escaped sample.
    public mutating func record(_ reason: String, input: some Collection<UInt8> = EmptyCollection()) {
        if counts[reason] == nil { reasons.append(reason) }
        counts[reason, default: 0] += 1
        totals[reason, default: 0] += 1
        if sample == nil, !input.isEmpty { sample = Self.escaped(input, limit: sampleBytes) }
    }

    /// The line to log now, if anything was counted and the last line is at least an interval old
    /// (the first line after a quiet spell comes at once); the counts start again after it.
    public mutating func line(now: Int64, what: String) -> String? {
        guard !reasons.isEmpty else { return nil }
        if let lastLine, now - lastLine < intervalMs { return nil }
        let parts = reasons.map { "\($0): \(counts[$0, default: 0])" }.joined(separator: ", ")
        let since = lastLine.map { " in the last \(now - $0) ms" } ?? ""
        var text = "\(what)\(since): \(parts)"
        if let sample { text += "; sample \"\(sample)\"" }
        lastLine = now
        counts.removeAll(keepingCapacity: true)
        reasons.removeAll(keepingCapacity: true)
        sample = nil
        return text
    }

    /// Printable ASCII as is (but `\` and `"`), everything else as \xNN; at most `limit` bytes
    /// of input, with "..." when there was more.
    public static func escaped(_ bytes: some Collection<UInt8>, limit: Int) -> String {
        let hex: [Character] = Array("0123456789abcdef")
        var text = ""
        for byte in bytes.prefix(limit) {
            switch byte {
            case UInt8(ascii: "\\"): text += "\\\\"
            case UInt8(ascii: "\""): text += "\\\""
            case 0x20...0x7E: text.append(Character(Unicode.Scalar(byte)))
            default: text += "\\x"; text.append(hex[Int(byte >> 4)]); text.append(hex[Int(byte & 15)])
            }
        }
        if !bytes.dropFirst(limit).isEmpty { text += "..." }
        return text
    }
}
