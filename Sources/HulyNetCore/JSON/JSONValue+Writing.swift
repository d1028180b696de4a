// Compact UTF-8 JSON output.
// Integral numbers below 2^53 in magnitude are written as plain integers, other finite
// numbers with Swift's shortest round-trip representation, non-finite numbers as null.
// Strings escape only '"', '\\' and control characters; "/" and non-ASCII are written raw.

extension JSONValue {
    /// Compact JSON, UTF-8.
    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(estimatedSize)
        write(to: &buffer)
        return buffer
    }

    /// Compact JSON text.
    public func serializedString() -> String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Appends compact JSON to `buffer`.
    public func write(to buffer: inout [UInt8]) {
        switch self {
        case .null:
            JSONWriter.appendLiteral("null", to: &buffer)
        case .bool(let b):
            JSONWriter.appendLiteral(b ? "true" : "false", to: &buffer)
        case .number(let d):
            JSONWriter.writeNumber(d, to: &buffer)
        case .string(let s):
            JSONWriter.writeString(s, to: &buffer)
        case .array(let elements):
            buffer.append(JSONByte.openBracket)
            var first = true
            for element in elements {
                if !first { buffer.append(JSONByte.comma) }
                first = false
                element.write(to: &buffer)
            }
            buffer.append(JSONByte.closeBracket)
        case .object(let members):
            buffer.append(JSONByte.openBrace)
            var first = true
            for (key, value) in members {
                if !first { buffer.append(JSONByte.comma) }
                first = false
                JSONWriter.writeString(key, to: &buffer)
                buffer.append(JSONByte.colon)
                value.write(to: &buffer)
            }
            buffer.append(JSONByte.closeBrace)
        }
    }

    /// A cheap first guess for the output size (looks at the top level only).
    var estimatedSize: Int {
        switch self {
        case .null, .bool, .number: return 24
        case .string(let s): return s.utf8.count &+ 8
        case .array(let a): return 16 &+ a.count &* 16
        case .object(let o): return 16 &+ o.count &* 32
        }
    }
}

enum JSONWriter {
    @inline(__always)
    static func appendLiteral(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func writeNumber(_ d: Double, to out: inout [UInt8]) {
        guard d.isFinite else {
            appendLiteral("null", to: &out)
            return
        }
        if d.magnitude < 9_007_199_254_740_992.0 {
            // Truncating conversion instead of rounded(): no libm needed.
            let i = Int64(d)
            if Double(i) == d {
                if i == 0 && d.sign == .minus {
                    appendLiteral("-0", to: &out)  // keeps the sign: valid JSON, parses back to -0
                } else {
                    writeInteger(i, to: &out)
                }
                return
            }
        }
        out.append(contentsOf: d.description.utf8)
    }

    static func writeInteger(_ n: Int64, to out: inout [UInt8]) {
        if n < 0 { out.append(JSONByte.minus) }
        var u = n.magnitude
        var length = 0
        var t = u
        repeat {
            length &+= 1
            t /= 10
        } while t != 0
        let start = out.count
        out.append(contentsOf: repeatElement(JSONByte.zero, count: length))
        out.withUnsafeMutableBufferPointer { p in
            var i = start &+ length &- 1
            repeat {
                p[i] = JSONByte.zero &+ UInt8(truncatingIfNeeded: u % 10)
                u /= 10
                i &-= 1
            } while u != 0
        }
    }

    static func writeString(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { writeEscaped($0, to: &out) }
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Writes the (valid UTF-8) bytes as a quoted JSON string.
    static func writeEscaped(_ u: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(JSONByte.quote)
        let n = u.count
        var i = 0
        var run = 0
        while true {
            if let base = u.baseAddress {
                while i &+ 8 <= n {
                    let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                    if JSONLexer.wordNeedsEscape(w) { break }
                    i &+= 8
                }
            }
            guard i < n else { break }
            let b = u[i]
            if b >= 0x20 && b != JSONByte.quote && b != JSONByte.backslash {
                i &+= 1
                continue
            }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<i])) }
            out.append(JSONByte.backslash)
            switch b {
            case JSONByte.quote, JSONByte.backslash: out.append(b)
            case 0x08: out.append(JSONByte.lowerB)
            case 0x09: out.append(JSONByte.lowerT)
            case 0x0A: out.append(JSONByte.lowerN)
            case 0x0C: out.append(JSONByte.lowerF)
            case 0x0D: out.append(JSONByte.lowerR)
            default:
                let hex = hexDigits.utf8Start
                out.append(JSONByte.lowerU)
                out.append(JSONByte.zero)
                out.append(JSONByte.zero)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0F)])
            }
            i &+= 1
            run = i
        }
        if run < n { out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<n])) }
        out.append(JSONByte.quote)
    }
}
