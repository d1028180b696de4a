// The low-level JSON lexer shared by the tree parser (JSONValue+Parsing.swift) and the
// validating skipper behind `JSONScanner`, so both accept exactly the same texts.
// Everything works on an UnsafeBufferPointer<UInt8>; every index is checked against
// `end` before it is read, so hostile input can never read out of bounds.

// MARK: - Byte constants

enum JSONByte {
    static let quote: UInt8 = 0x22          // "
    static let backslash: UInt8 = 0x5C      // \
    static let slash: UInt8 = 0x2F          // /
    static let comma: UInt8 = 0x2C          // ,
    static let colon: UInt8 = 0x3A          // :
    static let openBracket: UInt8 = 0x5B    // [
    static let closeBracket: UInt8 = 0x5D   // ]
    static let openBrace: UInt8 = 0x7B      // {
    static let closeBrace: UInt8 = 0x7D     // }
    static let minus: UInt8 = 0x2D          // -
    static let plus: UInt8 = 0x2B           // +
    static let dot: UInt8 = 0x2E            // .
    static let zero: UInt8 = 0x30           // 0
    static let nine: UInt8 = 0x39           // 9
    static let lowerE: UInt8 = 0x65         // e
    static let upperE: UInt8 = 0x45         // E
    static let lowerU: UInt8 = 0x75         // u
    static let lowerT: UInt8 = 0x74         // t
    static let lowerF: UInt8 = 0x66         // f
    static let lowerN: UInt8 = 0x6E         // n
    static let lowerB: UInt8 = 0x62         // b
    static let lowerR: UInt8 = 0x72         // r
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
}

/// A scanned string literal: the bytes between the quotes, and whether any escape occurs.
struct JSONStringToken {
    var start: Int
    var end: Int
    var escaped: Bool
}

/// A scanned number, with what the fast conversion path needs.
struct JSONNumberToken {
    var start: Int
    var end: Int
    var negative: Bool
    /// The first (up to) 19 significant digits as an integer.
    var mantissa: UInt64
    /// Count of significant digits (leading zeros excluded); > 19 means `mantissa` is truncated.
    var significantDigits: Int
    /// Digits before the decimal point (1 for a lone "0").
    var integerDigits: Int
    /// Digits after the decimal point.
    var fractionDigits: Int
    /// The explicit exponent, saturated to ±100_000_000.
    var exponent: Int
}

/// Powers of ten that are exact in a Double (10^0 ... 10^22).
private let exactPowersOfTen: [Double] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]

// MARK: - Lexer

struct JSONLexer {
    let buf: UnsafeBufferPointer<UInt8>
    /// Exclusive upper bound of the text (≤ buf.count).
    let end: Int
    var pos: Int

    init(_ buf: UnsafeBufferPointer<UInt8>) {
        self.buf = buf
        self.end = buf.count
        self.pos = 0
    }

    init(_ buf: UnsafeBufferPointer<UInt8>, start: Int, end: Int) {
        precondition(start >= 0 && start <= end && end <= buf.count)
        self.buf = buf
        self.end = end
        self.pos = start
    }

    // MARK: Errors

    static func describe(_ byte: UInt8) -> String {
        if byte > 0x20 && byte < 0x7F {
            return "character '\(Character(Unicode.Scalar(byte)))'"
        }
        let hex = String(byte, radix: 16, uppercase: true)
        return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
    }

    /// "unexpected character 'x'" (or end of input) at `offset`.
    func unexpected(at offset: Int) -> JSONError {
        if offset >= end { return JSONError("unexpected end of input", at: end) }
        return JSONError("unexpected \(JSONLexer.describe(buf[offset]))", at: offset)
    }

    func unexpected() -> JSONError { unexpected(at: pos) }

    // MARK: Whitespace and punctuation

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            let b = buf[pos]
            guard b == JSONByte.space || b == JSONByte.lineFeed || b == JSONByte.carriageReturn
                || b == JSONByte.tab else { return }
            pos &+= 1
        }
    }

    /// The byte at `pos`, or nil at the end.
    @inline(__always)
    var peek: UInt8? { pos < end ? buf[pos] : nil }

    /// Consumes `byte` (after skipping whitespace) or throws.
    @inline(__always)
    mutating func expect(_ byte: UInt8) throws(JSONError) {
        guard pos < end, buf[pos] == byte else { throw unexpected() }
        pos &+= 1
    }

    // MARK: Literals

    /// Consumes `literal` ("true", "false" or "null") whose first byte is at `pos`.
    @inline(__always)
    mutating func scanLiteral(_ literal: StaticString) throws(JSONError) {
        let n = literal.utf8CodeUnitCount
        let p = literal.utf8Start
        guard end &- pos >= n else { throw JSONError("invalid literal", at: pos) }
        var i = 1
        while i < n {
            guard buf[pos &+ i] == p[i] else { throw JSONError("invalid literal", at: pos) }
            i &+= 1
        }
        pos &+= n
    }

    // MARK: Strings

    /// Thirty-two bytes at once: true if any is '"', '\\', a control character or non-ASCII.
    /// Written as a loop without an early exit so that the compiler turns it into a few vector
    /// instructions: twice as fast as `wordNeedsAttention` on long strings.
    @inline(__always)
    static func blockNeedsAttention(_ p: UnsafePointer<UInt8>) -> Bool {
        var found: UInt8 = 0
        for i in 0..<32 {
            let b = p[i]
            // b &- 0x20 >= 0x60: below 0x20 (it wraps) or 0x80 and above.
            found |= (b &- 0x20 >= 0x60 ? 1 : 0) | (b == JSONByte.quote ? 1 : 0) | (b == JSONByte.backslash ? 1 : 0)
        }
        return found != 0
    }

    /// Eight bytes at once: true if any byte is '"', '\\', a control character or non-ASCII.
    @inline(__always)
    static func wordNeedsAttention(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (w &- ones &* 0x20) & ~w
        let q = w ^ (ones &* 0x22)
        let quote = (q &- ones) & ~q
        let s = w ^ (ones &* 0x5C)
        let backslash = (s &- ones) & ~s
        return ((control | quote | backslash) & highs) | (w & highs) != 0
    }

    /// Eight bytes at once: true if any byte needs escaping when written ('"', '\\', control).
    @inline(__always)
    static func wordNeedsEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        // Only bytes < 0x80 can need escaping; masking them with ~w keeps non-ASCII out.
        let control = (w &- ones &* 0x20) & ~w
        let q = w ^ (ones &* 0x22)
        let quote = (q &- ones) & ~q
        let s = w ^ (ones &* 0x5C)
        let backslash = (s &- ones) & ~s
        return (control | quote | backslash) & highs != 0
    }

    /// Scans and validates a string literal whose opening quote is at `pos`; leaves `pos`
    /// after the closing quote. Validates UTF-8 and escapes (including surrogate pairs).
    @inline(__always)
    mutating func scanString() throws(JSONError) -> JSONStringToken {
        pos &+= 1
        let start = pos
        var escaped = false
        while true {
            if let base = buf.baseAddress {
                while pos &+ 8 <= end {
                    let w = UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self)
                    if JSONLexer.wordNeedsAttention(w) { break }
                    pos &+= 8
                }
            }
            guard pos < end else { throw JSONError("unterminated string", at: end) }
            let b = buf[pos]
            if b == JSONByte.quote {
                pos &+= 1
                return JSONStringToken(start: start, end: pos &- 1, escaped: escaped)
            } else if b == JSONByte.backslash {
                escaped = true
                try scanEscape()
            } else if b < 0x20 {
                throw JSONError("unescaped control character in string", at: pos)
            } else if b < 0x80 {
                pos &+= 1
            } else {
                try scanMultibyteScalar()
            }
        }
    }

    /// Four hex digits at `i` as a code unit, or nil.
    @inline(__always)
    func hex4(at i: Int) -> UInt32? {
        guard i >= 0, end &- i >= 4 else { return nil }
        var value: UInt32 = 0
        for k in 0..<4 {
            let c = buf[i &+ k]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c &- 0x30
            case 0x41...0x46: digit = c &- 0x41 &+ 10
            case 0x61...0x66: digit = c &- 0x61 &+ 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Validates the escape sequence whose backslash is at `pos`.
    @inline(__always)
    mutating func scanEscape() throws(JSONError) {
        let at = pos
        guard end &- pos >= 2 else { throw JSONError("unterminated string", at: end) }
        switch buf[pos &+ 1] {
        case JSONByte.quote, JSONByte.backslash, JSONByte.slash, JSONByte.lowerB, JSONByte.lowerF,
             JSONByte.lowerN, JSONByte.lowerR, JSONByte.lowerT:
            pos &+= 2
        case JSONByte.lowerU:
            guard let unit = hex4(at: pos &+ 2) else { throw JSONError("invalid \\u escape", at: at) }
            pos &+= 6
            if unit >= 0xD800 && unit <= 0xDBFF {
                guard end &- pos >= 6, buf[pos] == JSONByte.backslash, buf[pos &+ 1] == JSONByte.lowerU,
                      let low = hex4(at: pos &+ 2), low >= 0xDC00 && low <= 0xDFFF
                else { throw JSONError("lone surrogate in \\u escape", at: at) }
                pos &+= 6
            } else if unit >= 0xDC00 && unit <= 0xDFFF {
                throw JSONError("lone surrogate in \\u escape", at: at)
            }
        default:
            throw JSONError("invalid escape sequence", at: at)
        }
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates,
    /// nothing above U+10FFFF) whose lead byte is at `pos`.
    @inline(__always)
    mutating func scanMultibyteScalar() throws(JSONError) {
        let b0 = buf[pos]
        let trailing: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: trailing = 1
        case 0xE0: trailing = 2; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: trailing = 2
        case 0xED: trailing = 2; high = 0x9F
        case 0xF0: trailing = 3; low = 0x90
        case 0xF1...0xF3: trailing = 3
        case 0xF4: trailing = 3; high = 0x8F
        default: throw JSONError("invalid UTF-8", at: pos)
        }
        guard end &- pos > trailing else { throw JSONError("invalid UTF-8", at: pos) }
        let b1 = buf[pos &+ 1]
        guard b1 >= low && b1 <= high else { throw JSONError("invalid UTF-8", at: pos) }
        var k = 2
        while k <= trailing {
            guard buf[pos &+ k] & 0xC0 == 0x80 else { throw JSONError("invalid UTF-8", at: pos) }
            k &+= 1
        }
        pos &+= trailing &+ 1
    }

    /// The value of a token produced by `scanString` (so already validated).
    func makeString(_ token: JSONStringToken, scratch: inout [UInt8]) -> String {
        if !token.escaped {
            return String(decoding: UnsafeBufferPointer(rebasing: buf[token.start..<token.end]), as: UTF8.self)
        }
        scratch.removeAll(keepingCapacity: true)
        var i = token.start
        var run = i
        while i < token.end {
            guard buf[i] == JSONByte.backslash else { i &+= 1; continue }
            if run < i { scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buf[run..<i])) }
            let c = buf[i &+ 1]
            i &+= 2
            switch c {
            case JSONByte.lowerB: scratch.append(0x08)
            case JSONByte.lowerF: scratch.append(0x0C)
            case JSONByte.lowerN: scratch.append(0x0A)
            case JSONByte.lowerR: scratch.append(0x0D)
            case JSONByte.lowerT: scratch.append(0x09)
            case JSONByte.lowerU:
                var scalar = hex4(at: i) ?? 0xFFFD
                i &+= 4
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    // scanEscape guaranteed "\uDC00-DFFF" follows.
                    let low = hex4(at: i &+ 2) ?? 0xDC00
                    i &+= 6
                    scalar = 0x10000 &+ ((scalar &- 0xD800) << 10) &+ (low &- 0xDC00)
                }
                JSONLexer.appendUTF8(scalar, to: &scratch)
            default: scratch.append(c)  // '"', '\\' and '/' stand for themselves
            }
            run = i
        }
        if run < token.end { scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buf[run..<token.end])) }
        return String(decoding: scratch, as: UTF8.self)
    }

    @inline(__always)
    static func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(truncatingIfNeeded: scalar))
        case 0x80..<0x800:
            out.append(0xC0 | UInt8(truncatingIfNeeded: scalar >> 6))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        case 0x800..<0x10000:
            out.append(0xE0 | UInt8(truncatingIfNeeded: scalar >> 12))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 6) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        default:
            out.append(0xF0 | UInt8(truncatingIfNeeded: scalar >> 18))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 12) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 6) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        }
    }

    // MARK: Numbers

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- JSONByte.zero < 10 }

    /// Scans and validates a number (RFC 8259 grammar) starting at `pos` ('-' or a digit).
    @inline(__always)
    mutating func scanNumber() throws(JSONError) -> JSONNumberToken {
        let start = pos
        var token = JSONNumberToken(start: start, end: start, negative: false, mantissa: 0,
                                    significantDigits: 0, integerDigits: 0, fractionDigits: 0, exponent: 0)
        if buf[pos] == JSONByte.minus {
            token.negative = true
            pos &+= 1
        }
        guard pos < end else { throw unexpected() }
        let first = buf[pos]
        if first == JSONByte.zero {
            pos &+= 1
            token.integerDigits = 1
            if pos < end && JSONLexer.isDigit(buf[pos]) {
                throw JSONError("leading zeros are not allowed in numbers", at: start)
            }
        } else if JSONLexer.isDigit(first) {
            var m: UInt64 = 0
            var n = 0
            while pos < end {
                let d = buf[pos] &- JSONByte.zero
                guard d < 10 else { break }
                if n < 19 { m = m &* 10 &+ UInt64(d) }
                n &+= 1
                pos &+= 1
            }
            token.mantissa = m
            token.significantDigits = n
            token.integerDigits = n
        } else {
            throw unexpected()
        }
        if pos < end && buf[pos] == JSONByte.dot {
            pos &+= 1
            guard pos < end && JSONLexer.isDigit(buf[pos]) else { throw unexpected() }
            var m = token.mantissa
            var n = token.significantDigits
            var f = 0
            while pos < end {
                let d = buf[pos] &- JSONByte.zero
                guard d < 10 else { break }
                if n != 0 || d != 0 {
                    if n < 19 { m = m &* 10 &+ UInt64(d) }
                    n &+= 1
                }
                f &+= 1
                pos &+= 1
            }
            token.mantissa = m
            token.significantDigits = n
            token.fractionDigits = f
        }
        if pos < end && (buf[pos] | 0x20) == JSONByte.lowerE {
            pos &+= 1
            var negativeExponent = false
            if pos < end && (buf[pos] == JSONByte.plus || buf[pos] == JSONByte.minus) {
                negativeExponent = buf[pos] == JSONByte.minus
                pos &+= 1
            }
            guard pos < end && JSONLexer.isDigit(buf[pos]) else { throw unexpected() }
            var e = 0
            while pos < end {
                let d = buf[pos] &- JSONByte.zero
                guard d < 10 else { break }
                if e < 100_000_000 { e = e &* 10 &+ Int(d) }
                pos &+= 1
            }
            token.exponent = negativeExponent ? -e : e
        }
        token.end = pos
        return token
    }

    /// The Double for a scanned number; throws "number out of range" if it overflows.
    /// Exact fast path (mantissa ≤ 2^53, |power of ten| ≤ 22: one correctly rounded IEEE
    /// operation); otherwise the correctly rounded standard library conversion.
    func numberValue(_ t: JSONNumberToken) throws(JSONError) -> Double {
        if t.significantDigits <= 19 {
            if t.mantissa == 0 { return t.negative ? -0.0 : 0.0 }
            let e10 = t.exponent &- t.fractionDigits
            if t.mantissa <= 1 << 53 && e10 >= -22 && e10 <= 22 {
                var d = Double(t.mantissa)
                if e10 < 0 { d /= exactPowersOfTen[-e10] } else { d *= exactPowersOfTen[e10] }
                return t.negative ? -d : d
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[t.start..<t.end]), as: UTF8.self)
        guard let d = Double(text) else { throw JSONError("invalid number", at: t.start) }
        guard d.isFinite else { throw JSONError("number out of range", at: t.start) }
        return d
    }

    /// Throws exactly when `numberValue` would, converting only when overflow is possible.
    @inline(__always)
    func checkNumberRange(_ t: JSONNumberToken) throws(JSONError) {
        // |value| < 10^(integerDigits + exponent) ≤ 10^308 < Double.greatestFiniteMagnitude.
        if t.integerDigits &+ t.exponent <= 308 { return }
        _ = try numberValue(t)
    }

    // MARK: Skipping (validation without building values)

    /// Skips an object key and its colon: `"key" ws : ws`.
    @inline(__always)
    mutating func skipKey() throws(JSONError) {
        guard pos < end, buf[pos] == JSONByte.quote else { throw unexpected() }
        _ = try scanString()
        skipWhitespace()
        try expect(JSONByte.colon)
        skipWhitespace()
    }

    /// Validates and skips one value starting at `pos` (whitespace already skipped), with
    /// `openContainers` containers already open around it (for the depth limit). Iterative:
    /// deep nesting never grows the call stack, and nothing is allocated unless the
    /// nesting inside this value exceeds 64.
    mutating func skipValue(openContainers: Int = 0) throws(JSONError) {
        let maxDepth = JSONValue.maxDepth
        var depth = openContainers
        var local = 0                 // containers opened by this call
        var kinds: UInt64 = 0         // bit i set: container i (i < 64) is an object
        var deeperKinds: [Bool] = []  // containers 64...

        value: while true {
            guard pos < end else { throw unexpected() }
            let c = buf[pos]
            switch c {
            case JSONByte.openBrace, JSONByte.openBracket:
                let isObject = c == JSONByte.openBrace
                guard depth < maxDepth else { throw JSONError("nesting deeper than \(maxDepth)", at: pos) }
                pos &+= 1
                skipWhitespace()
                let close = isObject ? JSONByte.closeBrace : JSONByte.closeBracket
                if pos < end && buf[pos] == close {
                    pos &+= 1   // empty container: a complete value
                } else {
                    depth &+= 1
                    if local < 64 {
                        if isObject { kinds |= 1 << UInt64(local) } else { kinds &= ~(1 << UInt64(local)) }
                    } else {
                        deeperKinds.append(isObject)
                    }
                    local &+= 1
                    if isObject { try skipKey() }
                    continue value
                }
            case JSONByte.quote:
                _ = try scanString()
            case JSONByte.minus, JSONByte.zero...JSONByte.nine:
                let t = try scanNumber()
                try checkNumberRange(t)
            case JSONByte.lowerT: try scanLiteral("true")
            case JSONByte.lowerF: try scanLiteral("false")
            case JSONByte.lowerN: try scanLiteral("null")
            default:
                throw unexpected()
            }
            // A value is complete: continue or close the enclosing containers.
            while local > 0 {
                let i = local &- 1
                let isObject = i < 64 ? (kinds >> UInt64(i)) & 1 == 1 : deeperKinds[i &- 64]
                skipWhitespace()
                guard pos < end else { throw unexpected() }
                let d = buf[pos]
                if d == JSONByte.comma {
                    pos &+= 1
                    skipWhitespace()
                    if isObject { try skipKey() }
                    continue value
                }
                guard d == (isObject ? JSONByte.closeBrace : JSONByte.closeBracket) else { throw unexpected() }
                pos &+= 1
                local = i
                depth &-= 1
                if i >= 64 { deeperKinds.removeLast() }
            }
            return
        }
    }
}

// MARK: - Public scanner

/// Validating, non-allocating navigation of JSON text, for forwarding without decoding.
public enum JSONScanner {
    /// Byte ranges of the elements of a top-level JSON array (whitespace around each element
    /// excluded), validating the whole text with the same strictness as the parser.
    /// Throws on non-array or malformed text.
    public static func topLevelArrayElements(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> [Range<Int>] {
        try elements(UnsafeBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                         count: bytes.count))
    }

    public static func topLevelArrayElements(_ bytes: [UInt8]) throws(JSONError) -> [Range<Int>] {
        try bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONError) in try elements(buf) }
        }.get()
    }

    static func elements(_ buf: UnsafeBufferPointer<UInt8>) throws(JSONError) -> [Range<Int>] {
        try elements(buf, start: 0, end: buf.count)
    }

    /// The same for `start..<end` of `buf` (offsets are `buf`'s).
    static func elements(_ buf: UnsafeBufferPointer<UInt8>, start: Int, end: Int) throws(JSONError) -> [Range<Int>] {
        var lexer = JSONLexer(buf, start: start, end: end)
        lexer.skipWhitespace()
        guard lexer.pos < lexer.end, buf[lexer.pos] == JSONByte.openBracket else {
            if lexer.pos < lexer.end {
                throw JSONError("expected a JSON array, found \(JSONLexer.describe(buf[lexer.pos]))", at: lexer.pos)
            }
            throw lexer.unexpected()
        }
        lexer.pos &+= 1
        lexer.skipWhitespace()
        var ranges: [Range<Int>] = []
        if lexer.peek == JSONByte.closeBracket {
            lexer.pos &+= 1
        } else {
            ranges.reserveCapacity(4)  // RPC frames are [method, params] / [target, operation, data]
            while true {
                let start = lexer.pos
                try lexer.skipValue(openContainers: 1)
                ranges.append(start..<lexer.pos)
                lexer.skipWhitespace()
                guard lexer.pos < lexer.end else { throw lexer.unexpected() }
                let c = buf[lexer.pos]
                lexer.pos &+= 1
                if c == JSONByte.closeBracket { break }
                guard c == JSONByte.comma else { throw lexer.unexpected(at: lexer.pos &- 1) }
                lexer.skipWhitespace()
            }
        }
        lexer.skipWhitespace()
        if lexer.pos < lexer.end {
            throw JSONError("unexpected trailing \(JSONLexer.describe(buf[lexer.pos]))", at: lexer.pos)
        }
        return ranges
    }

    /// The range of the first element of the JSON array at `range` of `bytes`, scanning only as
    /// far as that element (for text already validated whole, such as a request's params within
    /// its payload); nil if the range does not start an array with an element.
    public static func firstArrayElement(_ bytes: [UInt8], in range: Range<Int>) -> Range<Int>? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return bytes.withUnsafeBufferPointer { buf -> Range<Int>? in
            var lexer = JSONLexer(buf, start: range.lowerBound, end: range.upperBound)
            lexer.skipWhitespace()
            guard lexer.peek == JSONByte.openBracket else { return nil }
            lexer.pos &+= 1
            lexer.skipWhitespace()
            let start = lexer.pos
            guard lexer.peek != JSONByte.closeBracket, (try? lexer.skipValue(openContainers: 1)) != nil else { return nil }
            return start..<lexer.pos
        }
    }

    /// If `range` of `bytes` holds exactly one JSON string (whitespace around it allowed), its
    /// decoded value (escapes included); nil if it holds anything else or is out of bounds.
    public static func stringValue(_ bytes: [UInt8], in range: Range<Int>) -> String? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return bytes.withUnsafeBufferPointer { buf -> String? in
            var lexer = JSONLexer(buf, start: range.lowerBound, end: range.upperBound)
            lexer.skipWhitespace()
            guard lexer.peek == JSONByte.quote, let token = try? lexer.scanString() else { return nil }
            lexer.skipWhitespace()
            guard lexer.pos == lexer.end else { return nil }
            var scratch: [UInt8] = []
            return lexer.makeString(token, scratch: &scratch)
        }
    }
}
