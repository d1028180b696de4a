// A JSON document tree, its error type, literal conformances and accessors.
// Pure Swift standard library (no Foundation) so it is fast and portable.
// Parsing lives in JSONValue+Parsing.swift, writing in JSONValue+Writing.swift and the
// shared low-level lexer plus the validating skipper in JSONScanner.swift.

/// A JSON value (RFC 8259). Numbers are IEEE doubles; objects are unordered.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

/// A parse error: what went wrong and the byte offset in the input where it was detected.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Human readable, including the offset, e.g. "unexpected character 'x' at offset 12".
    public var message: String
    /// Byte offset into the input.
    public var offset: Int

    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// `reason` is completed with " at offset N".
    init(_ reason: String, at offset: Int) {
        self.message = "\(reason) at offset \(offset)"
        self.offset = offset
    }

    public var description: String { message }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Duplicate keys: the last one wins (as in parsing).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = [String: JSONValue](minimumCapacity: elements.count)
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

// MARK: - Accessors

extension JSONValue {
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    /// The number as an `Int`, only when it is integral and representable.
    public var intValue: Int? {
        // Int(exactly:) and rounded() call into libm, which a Foundation-free module does
        // not link on Linux; a truncating conversion plus a comparison does the same job.
        guard case .number(let d) = self else { return nil }
        let lower = Double(Int.min)  // -2^63 (or -2^31): exact
        guard d >= lower && d < -lower else { return nil }  // also rejects NaN
        let i = Int(d)
        return Double(i) == d ? i : nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Object member; nil if this is not an object or the key is absent.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// Array element; nil if this is not an array or the index is out of range.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let a) = self, index >= 0, index < a.count { return a[index] }
        return nil
    }
}

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text.
    public var description: String { serializedString() }
}
