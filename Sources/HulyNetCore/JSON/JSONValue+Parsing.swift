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
        /// Index into `values` (arrays) or `keys` (objects) where this container's members start.
        var start: Int
        /// Objects: index into `memberValues` where this object's values start. (Keys of
        /// enclosing objects whose values are still being parsed sit below `start` in `keys`,
        /// so the two stacks are not aligned.)
        var valueStart: Int = 0
    }

    /// Parses one value at `lexer.pos` (whitespace already skipped).
    mutating func parseValue() throws(JSONError) -> JSONValue {
        let maxDepth = JSONValue.maxDepth
        // Open containers and their pending members, shared by all levels so a document
        // needs only a few allocations whatever its shape.
        var frames: [Frame] = []
        var values: [JSONValue] = []
        var keys: [String] = []
        var memberValues: [JSONValue] = []

        value: while true {
            guard lexer.pos < lexer.end else { throw lexer.unexpected() }
            var result: JSONValue
            let c = lexer.buf[lexer.pos]
            switch c {
            case JSONByte.openBrace:
                guard frames.count < maxDepth else {
                    throw JSONError("nesting deeper than \(maxDepth)", at: lexer.pos)
                }
                lexer.pos &+= 1
                lexer.skipWhitespace()
                if lexer.peek == JSONByte.closeBrace {
                    lexer.pos &+= 1
                    result = .object([:])
                } else {
                    frames.append(Frame(isObject: true, start: keys.count, valueStart: memberValues.count))
                    keys.append(try parseKey())
                    continue value
                }
            case JSONByte.openBracket:
                guard frames.count < maxDepth else {
                    throw JSONError("nesting deeper than \(maxDepth)", at: lexer.pos)
                }
                lexer.pos &+= 1
                lexer.skipWhitespace()
                if lexer.peek == JSONByte.closeBracket {
                    lexer.pos &+= 1
                    result = .array([])
                } else {
                    frames.append(Frame(isObject: false, start: values.count))
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
                lexer.skipWhitespace()
                if frame.isObject {
                    memberValues.append(result)
                    guard lexer.pos < lexer.end else { throw lexer.unexpected() }
                    let d = lexer.buf[lexer.pos]
                    if d == JSONByte.comma {
                        lexer.pos &+= 1
                        lexer.skipWhitespace()
                        keys.append(try parseKey())
                        continue value
                    }
                    guard d == JSONByte.closeBrace else { throw lexer.unexpected() }
                    lexer.pos &+= 1
                    frames.removeLast()
                    result = .object(JSONTreeParser.takeObject(keys: &keys, from: frame.start,
                                                                values: &memberValues, from: frame.valueStart))
                } else {
                    values.append(result)
                    guard lexer.pos < lexer.end else { throw lexer.unexpected() }
                    let d = lexer.buf[lexer.pos]
                    if d == JSONByte.comma {
                        lexer.pos &+= 1
                        lexer.skipWhitespace()
                        continue value
                    }
                    guard d == JSONByte.closeBracket else { throw lexer.unexpected() }
                    lexer.pos &+= 1
                    frames.removeLast()
                    result = .array(JSONTreeParser.takeArray(&values, from: frame.start))
                }
            }
            return result
        }
    }

    /// Moves `values[start...]` out into a new exactly sized array.
    @inline(__always)
    static func takeArray(_ values: inout [JSONValue], from start: Int) -> [JSONValue] {
        let n = values.count &- start
        if start == 0 {
            let all = values
            values = []
            return all
        }
        let array = [JSONValue](values[start...])
        values.removeLast(n)
        return array
    }

    /// Builds the object from `keys[keyStart...]` / `values[valueStart...]` (duplicate keys: last wins)
    /// and removes them.
    @inline(__always)
    static func takeObject(keys: inout [String], from keyStart: Int,
                           values: inout [JSONValue], from valueStart: Int) -> [String: JSONValue] {
        let n = keys.count &- keyStart
        precondition(values.count &- valueStart == n)
        var object = [String: JSONValue](minimumCapacity: n)
        var i = 0
        while i < n {
            object[keys[keyStart &+ i]] = values[valueStart &+ i]
            i &+= 1
        }
        keys.removeLast(n)
        values.removeLast(n)
        return object
    }
}
