// Compact UTF-8 JSON output.
// Integral numbers below 2^53 in magnitude are written as plain integers, other finite
// numbers with Swift's shortest round-trip representation, non-finite numbers as null.
// Strings escape only '"', '\\' and control characters; "/" and non-ASCII are written raw.

extension JSONValue {
    /// Compact JSON, UTF-8.
    public func serialized() -> [UInt8] {
        var output = JSONOutput(capacity: estimatedSize)
        output.write(self)
        return output.makeArray()
    }

    /// Compact JSON text.
    public func serializedString() -> String {
        var output = JSONOutput(capacity: estimatedSize)
        output.write(self)
        return output.makeString()
    }

    /// Appends compact JSON to `buffer`.
    public func write(to buffer: inout [UInt8]) {
        var output = JSONOutput(capacity: estimatedSize)
        output.write(self)
        output.append(to: &buffer)
    }

    /// Appends `text` as a JSON string. Text that needs no escaping (ids, the usual case on the
    /// coordinator's hot path) is copied as it is, with no buffer in between.
    public static func appendString(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendString($0, to: &buffer) }
    }

    public static func appendString(_ text: [UInt8], to buffer: inout [UInt8]) {
        text.withUnsafeBufferPointer { appendString($0, to: &buffer) }
    }

    /// Printable ASCII but '"' and '\\' is copied as it is; anything else goes through `String`
    /// (which also repairs bytes that are not UTF-8, as a peer's may be) and is escaped.
    static func appendString(_ text: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        var plain = true
        var index = 0
        if let base = text.baseAddress {
            // Eight bytes a step: ids (uuids, request ids) are copied on every forwarded request.
            while index &+ 8 <= text.count {
                if JSONLexer.wordNeedsAttention(UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)) { break }
                index &+= 8
            }
        }
        while index < text.count {
            let byte = text[index]
            if byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                plain = false
                break
            }
            index &+= 1
        }
        if plain {
            buffer.append(UInt8(ascii: "\""))
            buffer.append(contentsOf: text)
            buffer.append(UInt8(ascii: "\""))
        } else {
            JSONValue.string(String(decoding: text, as: UTF8.self)).write(to: &buffer)
        }
    }

    /// A cheap first guess for the output size (looks at the top level only).
    var estimatedSize: Int {
        switch self {
        case .null, .bool, .number: return 32
        case .string(let s): return s.utf8.count &+ 16
        case .array(let a): return 64 &+ a.count &* 16
        case .object(let o): return 64 &+ o.count &* 32
        }
    }
}

/// A growable byte buffer written through a raw pointer: appending a byte is a capacity
/// check and a store (no uniqueness checks as with `[UInt8]`). Noncopyable, so it owns its
/// memory and frees it exactly once.
struct JSONOutput: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private(set) var count: Int = 0
    private var capacity: Int

    init(capacity: Int) {
        let capacity = max(capacity, 64)
        self.base = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    deinit { base.deallocate() }

    @inline(__always)
    mutating func reserve(_ n: Int) {
        if capacity &- count < n { grow(n) }
    }

    @inline(never)
    private mutating func grow(_ n: Int) {
        var newCapacity = capacity * 2
        while newCapacity - count < n { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.initialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafePointer<UInt8>, count n: Int) {
        reserve(n)
        (base + count).update(from: bytes, count: n)
        count &+= n
    }

    @inline(__always)
    mutating func append(_ literal: StaticString) {
        append(literal.utf8Start, count: literal.utf8CodeUnitCount)
    }

    func makeArray() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { destination, initialized in
            if count > 0 { destination.baseAddress!.initialize(from: base, count: count) }
            initialized = count
        }
    }

    func makeString() -> String {
        String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }

    func append(to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: base, count: count))
    }

    /// The bytes written so far, valid only during `body` (the Encodable writer stitches
    /// containers' outputs together with it).
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    // MARK: Values

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null:
            append("null")
        case .bool(let b):
            append(b ? "true" : "false")
        case .number(let d):
            writeNumber(d)
        case .string(let s):
            writeString(s)
        case .array(let elements):
            append(JSONByte.openBracket)
            var first = true
            for element in elements {
                if !first { append(JSONByte.comma) }
                first = false
                write(element)
            }
            append(JSONByte.closeBracket)
        case .object(let members):
            append(JSONByte.openBrace)
            var first = true
            for (key, member) in members {
                if !first { append(JSONByte.comma) }
                first = false
                writeString(key)
                append(JSONByte.colon)
                write(member)
            }
            append(JSONByte.closeBrace)
        }
    }

    mutating func writeNumber(_ d: Double) {
        guard d.isFinite else {
            append("null")
            return
        }
        if d.magnitude < 9_007_199_254_740_992.0 {
            // Truncating conversion instead of rounded(): no libm needed.
            let i = Int64(d)
            if Double(i) == d {
                if i == 0 && d.sign == .minus {
                    append("-0")  // keeps the sign: valid JSON, parses back to -0
                } else {
                    writeInteger(i)
                }
                return
            }
        }
        // Shortest round-trip form, e.g. "0.1", "1e-07", "1e+300": always valid JSON here.
        var text = d.description
        text.withUTF8 { append($0.baseAddress!, count: $0.count) }
    }

    mutating func writeInteger(_ n: Int64) {
        if n < 0 { append(JSONByte.minus) }
        var u = n.magnitude
        var length = 0
        var t = u
        repeat {
            length &+= 1
            t /= 10
        } while t != 0
        reserve(length)
        var p = base + (count &+ length)
        repeat {
            p -= 1
            p.pointee = JSONByte.zero &+ UInt8(truncatingIfNeeded: u % 10)
            u /= 10
        } while u != 0
        count &+= length
    }

    mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { writeEscaped($0) }
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Writes (valid UTF-8) bytes as a quoted JSON string: only '"', '\\' and control
    /// characters are escaped.
    mutating func writeEscaped(_ u: UnsafeBufferPointer<UInt8>) {
        let n = u.count
        reserve(n &+ 2)
        append(JSONByte.quote)
        guard let source = u.baseAddress else {
            append(JSONByte.quote)
            return
        }
        var i = 0
        var run = 0
        while true {
            while i &+ 8 <= n {
                let w = UnsafeRawPointer(source + i).loadUnaligned(as: UInt64.self)
                if JSONLexer.wordNeedsEscape(w) { break }
                i &+= 8
            }
            guard i < n else { break }
            let b = source[i]
            if b >= 0x20 && b != JSONByte.quote && b != JSONByte.backslash {
                i &+= 1
                continue
            }
            if run < i { append(source + run, count: i &- run) }
            switch b {
            case JSONByte.quote: append("\\\"")
            case JSONByte.backslash: append("\\\\")
            case 0x08: append("\\b")
            case 0x09: append("\\t")
            case 0x0A: append("\\n")
            case 0x0C: append("\\f")
            case 0x0D: append("\\r")
            default:
                let hex = JSONOutput.hexDigits.utf8Start
                append("\\u00")
                append(hex[Int(b >> 4)])
                append(hex[Int(b & 0x0F)])
            }
            i &+= 1
            run = i
        }
        if run < n { append(source + run, count: n &- run) }
        append(JSONByte.quote)
    }
}
