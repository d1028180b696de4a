// JSON text kept as the bytes its writer chose. Payloads travel as `JSONText` from the caller to
// the container and back: validated once where they enter, parsed only when someone asks for a
// value, so key order, number spelling (12345678901234567890, 1.10, 1e2) and layout arrive as
// they were written.

/// One JSON value as UTF-8 text, known to be valid. Equality is byte equality: `{"a":1}` and
/// `{ "a": 1 }` are different texts of the same value (compare `value()`s for that).
public struct JSONText: Sendable, Hashable, CustomStringConvertible {
    /// The text's bytes, exactly as written (whitespace around the value included).
    public let bytes: [UInt8]

    /// Checks that `bytes` hold exactly one JSON value (RFC 8259, as strict as the parser;
    /// whitespace around it allowed) and keeps them as they are.
    public init(validating bytes: [UInt8]) throws(JSONError) {
        try JSONScanner.validate(bytes)
        self.bytes = bytes
    }

    /// The same for text.
    public init(validating text: String) throws(JSONError) {
        try self.init(validating: Array(text.utf8))
    }

    /// Bytes the caller knows to be one valid JSON value (a range of text validated whole).
    /// Nothing is checked: wrong bytes here become wrong bytes on the wire.
    public init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// `value` written once, compactly (`JSONValue` objects have no key order: see `JSONValue`).
    /// Labelled, unlike the literal: `JSONText("null")` is the text `null`, never the string.
    public init(encoding value: JSONValue) {
        bytes = value.serialized()
    }

    /// `null`.
    public static let null = JSONText(unchecked: Array("null".utf8))

    /// The value, parsed now (each call parses again: keep it if you need it twice).
    public func value() throws(JSONError) -> JSONValue {
        try JSONValue.parse(bytes)
    }

    /// The text as a Swift string.
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public var description: String { string }

    /// Appends the text to `buffer` as it is (composing a larger JSON text around it).
    @inlinable
    public func write(to buffer: inout [UInt8]) {
        buffer.append(contentsOf: bytes)
    }
}

extension JSONText: ExpressibleByStringLiteral {
    /// A literal JSON text, e.g. `#"{"b":1,"a":2}"#`; a literal that is not valid JSON is a
    /// programming error and stops the program (text from outside goes through
    /// `init(validating:)`).
    public init(stringLiteral text: String) {
        do { try self.init(validating: text) } catch {
            preconditionFailure("JSONText literal is not valid JSON: \(error)")
        }
    }
}

extension JSONScanner {
    /// Throws unless `bytes` hold exactly one JSON value (whitespace around it allowed).
    public static func validate(_ bytes: [UInt8]) throws(JSONError) {
        try bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONError) in
                var lexer = JSONLexer(buf)
                lexer.skipWhitespace()
                try lexer.skipValue()
                lexer.skipWhitespace()
                if lexer.pos < lexer.end {
                    throw JSONError("unexpected trailing \(JSONLexer.describe(buf[lexer.pos]))", at: lexer.pos)
                }
            }
        }.get()
    }

    /// The ranges of the elements of the JSON array at `range` of `bytes` (whitespace around each
    /// excluded), validating it as it goes: nil if `range` does not hold exactly one valid array.
    /// For text validated whole already, `elementsOfValidArray` reads the same ranges without a
    /// second validating pass.
    public static func arrayElements(_ bytes: [UInt8], in range: Range<Int>) -> [Range<Int>]? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return bytes.withUnsafeBufferPointer { buf in
            try? Result { () throws(JSONError) in try elements(buf, start: range.lowerBound, end: range.upperBound) }.get()
        }
    }
}

extension JSONByte {
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab || byte == lineFeed || byte == carriageReturn
    }
}
