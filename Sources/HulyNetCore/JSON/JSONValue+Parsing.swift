// Strict RFC 8259 parsing into `JSONValue`, on top of the shared `JSONLexer`.
// The tree builder is iterative (explicit stacks), so nesting depth never touches the call
// stack; deeper than `maxDepth` is reported as an error.

extension JSONValue {
    /// Containers may nest this deep; deeper is an error (never a stack overflow).
    public static var maxDepth: Int { 512 }

    /// Parses exactly one JSON value (surrounding whitespace allowed, trailing garbage is an error).
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ parseResult($0) }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBufferPointer { parseResult($0) }.get()
    }

    /// Parses exactly one JSON value from raw bytes.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        try parse(buffer: UnsafeBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                              count: bytes.count))
    }

    /// Parses exactly one JSON value from text.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        var text = text
        return try text.withUTF8 { parseResult($0) }.get()
    }

    static func parseResult(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, JSONError> {
        Result { () throws(JSONError) in try parse(buffer: buffer) }
    }

    static func parse(buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) -> JSONValue {
        var parser = JSONTreeParser(lexer: JSONLexer(buffer))
        return try parser.parseDocument()
    }
}

struct JSONTreeParser {
    var lexer: JSONLexer
    /// Reused buffer for decoding strings with escapes.
    var scratch: [UInt8] = []

    init(lexer: JSONLexer) {
        self.lexer = lexer
    }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        lexer.skipWhitespace()
        let value = try parseValue()
        lexer.skipWhitespace()
        if lexer.pos < lexer.end {
            throw JSONError("unexpected trailing \(JSONLexer.describe(lexer.buf[lexer.pos]))", at: lexer.pos)
        }
        return value
    }

    @inline(__always)
    mutating func parseString() throws(JSONError) -> String {
        let token = try lexer.scanString()
        return lexer.makeString(token, scratch: &scratch)
    }

    /// `"key" ws : ws`
    @inline(__always)
    mutating func parseKey() throws(JSONError) -> String {
        guard lexer.pos < lexer.end, lexer.buf[lexer.pos] == JSONByte.quote else { throw lexer.unexpected() }
        let key = try parseString()
        lexer.skipWhitespace()
        try lexer.expect(JSONByte.colon)
        lexer.skipWhitespace()
        return key
    }

    private struct Frame {
        var isObject: Bool
        /// Index into `stack` where this container's members start.
        var start: Int
    }

    /// Parses one value at `lexer.pos` (whitespace already skipped).
    mutating func parseValue() throws(JSONError) -> JSONValue {
        let maxDepth = JSONValue.maxDepth
        // Open containers, and one stack of pending members shared by all levels: array
        // elements, and for objects alternating keys (as .string) and values. A document needs
        // only these two allocations (plus its own values) whatever its shape.
        var frames: [Frame] = []
        var stack: [JSONValue] = []

        value: while true {
            guard lexer.pos < lexer.end else { throw lexer.unexpected() }
            var result: JSONValue
            let c = lexer.buf[lexer.pos]
            switch c {
            case JSONByte.openBrace, JSONByte.openBracket:
                guard frames.count < maxDepth else {
                    throw JSONError("nesting deeper than \(maxDepth)", at: lexer.pos)
                }
                let isObject = c == JSONByte.openBrace
                lexer.pos &+= 1
                lexer.skipWhitespace()
                if lexer.peek == (isObject ? JSONByte.closeBrace : JSONByte.closeBracket) {
                    lexer.pos &+= 1
                    result = isObject ? .object([:]) : .array([])
                } else {
                    if frames.isEmpty {
                        frames.reserveCapacity(16)
                        stack.reserveCapacity(32)
                    }
                    frames.append(Frame(isObject: isObject, start: stack.count))
                    if isObject { stack.append(.string(try parseKey())) }
                    continue value
                }
            case JSONByte.quote:
                result = .string(try parseString())
            case JSONByte.minus, JSONByte.zero...JSONByte.nine:
                let token = try lexer.scanNumber()
                result = .number(try lexer.numberValue(token))
            case JSONByte.lowerT:
                try lexer.scanLiteral("true")
                result = .bool(true)
            case JSONByte.lowerF:
                try lexer.scanLiteral("false")
                result = .bool(false)
            case JSONByte.lowerN:
                try lexer.scanLiteral("null")
                result = .null
            default:
                throw lexer.unexpected()
            }

            // `result` is complete: add it to the enclosing container, closing containers as needed.
            while let frame = frames.last {
                stack.append(result)
                lexer.skipWhitespace()
                guard lexer.pos < lexer.end else { throw lexer.unexpected() }
                let d = lexer.buf[lexer.pos]
                if d == JSONByte.comma {
                    lexer.pos &+= 1
                    lexer.skipWhitespace()
                    if frame.isObject { stack.append(.string(try parseKey())) }
                    continue value
                }
                guard d == (frame.isObject ? JSONByte.closeBrace : JSONByte.closeBracket) else {
                    throw lexer.unexpected()
                }
                lexer.pos &+= 1
                frames.removeLast()
                result = frame.isObject
                    ? .object(JSONTreeParser.takeObject(&stack, from: frame.start))
                    : .array(JSONTreeParser.takeArray(&stack, from: frame.start))
            }
            return result
        }
    }

    /// Moves `stack[start...]` (at least one element) into a new exactly sized array.
    @inline(__always)
    static func takeArray(_ stack: inout [JSONValue], from start: Int) -> [JSONValue] {
        let n = stack.count &- start
        precondition(n > 0 && start >= 0)
        let array = [JSONValue](unsafeUninitializedCapacity: n) { destination, initialized in
            stack.withUnsafeMutableBufferPointer { source in
                // Move instead of copy (no retain/release per element); leave trivial .null behind.
                let from = source.baseAddress! + start
                destination.baseAddress!.moveInitialize(from: from, count: n)
                from.initialize(repeating: .null, count: n)
            }
            initialized = n
        }
        stack.removeLast(n)
        return array
    }

    /// Builds the object from the key/value pairs in `stack[start...]` (duplicate keys: last
    /// wins) and removes them.
    @inline(__always)
    static func takeObject(_ stack: inout [JSONValue], from start: Int) -> [String: JSONValue] {
        let n = stack.count &- start
        precondition(n > 0 && n % 2 == 0 && start >= 0)
        var object = [String: JSONValue](minimumCapacity: n / 2)
        stack.withUnsafeMutableBufferPointer { source in
            var p = source.baseAddress! + start
            let end = p + n
            while p < end {
                let key = p.move()
                let value = (p + 1).move()
                p.initialize(to: .null)
                (p + 1).initialize(to: .null)
                if case .string(let k) = key { object[k] = value }
                p += 2
            }
        }
        stack.removeLast(n)
        return object
    }
}
