// Codable for JSON texts: Swift values in and out of `JSONText` (the writer is in
// JSONEncoding.swift, the reader in JSONDecoding.swift), and `JSONValue` and `JSONText` as
// Codable values themselves.

extension JSONText {
    /// The compact JSON text of `value`: object members in the order the value encodes them (a
    /// synthesized `Encodable` follows declaration order), integers exactly (all of Int64 and
    /// UInt64), Double and Float in their shortest round-trip form, strings escaped as
    /// `JSONValue` writes them; an embedded `JSONText` goes in as its bytes (whitespace around
    /// it left out), a `JSONValue` as `JSONText(encoding:)` writes it (so a non-finite `.number` there
    /// is `null`, as everywhere a `JSONValue` is written). A value that encodes nothing is `{}`
    /// (as with JSONEncoder).
    /// Throws `EncodingError.invalidValue` for NaN or an infinity, for values nesting deeper than
    /// `JSONValue.maxDepth`, and for containers used against the rules of `Encoder`.
    public init(encoding value: some Encodable) throws {
        self.init(unchecked: try JSONEncoding.encode(value))
    }

    /// The text as a `T`. Integers are read exactly from their digits (an integer type takes
    /// `100`, `1e2` or `100.0`, not `1.5`; out of range is `DecodingError.dataCorrupted`), other
    /// numbers correctly rounded; a `JSONText` member is its bytes as written. Errors are
    /// `DecodingError`s with the coding path, e.g. "expected Int at data.items[2], found string".
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoding.decode(T.self, from: bytes)
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        if let decoder = decoder as? JSONValueDecoder {
            self = try decoder.context.jsonValue(decoder.index)
            return
        }
        // Another decoder (JSONDecoder, a property list one, ...): ask for each kind in turn.
        if let container = try? decoder.singleValueContainer() {
            if container.decodeNil() {
                self = .null
                return
            }
            if let value = try? container.decode(Bool.self) {
                self = .bool(value)
                return
            }
            if let value = try? container.decode(Double.self) {
                self = .number(value)
                return
            }
            if let value = try? container.decode(String.self) {
                self = .string(value)
                return
            }
        }
        if var container = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            if let count = container.count { elements.reserveCapacity(count) }
            while !container.isAtEnd { elements.append(try container.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        let container = try decoder.container(keyedBy: JSONCodingKey.self)
        var members: [String: JSONValue] = [:]
        for key in container.allKeys { members[key.stringValue] = try container.decode(JSONValue.self, forKey: key) }
        self = .object(members)
    }

    public func encode(to encoder: any Encoder) throws {
        if let encoder = encoder as? JSONValueEncoder {
            var container = encoder.singleValueContainer()
            try container.encode(self)  // written by `JSONOutput.write`, as `serialized()` does
            return
        }
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .object(let members):
            var container = encoder.container(keyedBy: JSONCodingKey.self)
            for (key, value) in members { try container.encode(value, forKey: JSONCodingKey(stringValue: key)) }
        }
    }
}

extension JSONText: Codable {
    /// From `JSONText.decode`: the member's bytes exactly as written (its spelling, key order
    /// and inner whitespace; whitespace around it left out), a copy of that range of the text.
    /// From another decoder (JSONDecoder, ...): the value it decodes, written compactly.
    public init(from decoder: any Decoder) throws {
        if let decoder = decoder as? JSONValueDecoder {
            self = decoder.context.jsonText(decoder.index)
        } else {
            self.init(encoding: try JSONValue(from: decoder))
        }
    }

    /// Into `JSONText(encoding:)`: the bytes as they are. Into another encoder: the parsed value.
    public func encode(to encoder: any Encoder) throws {
        if let encoder = encoder as? JSONValueEncoder {
            var container = encoder.singleValueContainer()
            try container.encode(self)
            return
        }
        let value: JSONValue
        do {
            value = try self.value()
        } catch {
            throw EncodingError.invalidValue(self, .init(
                codingPath: encoder.codingPath, debugDescription: "not valid JSON: \(error.message)", underlyingError: error))
        }
        try value.encode(to: encoder)
    }
}
