// Encodable -> JSON text, without Foundation and without a `JSONValue` in between (which would
// lose the order of keys and round integers through Double).
//
// Scalars are written as bytes the moment they are encoded, with the writer of
// JSONValue+Writing.swift (one spelling of numbers and strings). Each value that opens a
// container gets a node with its own output; its parent notes where in its own output the node
// goes (a "hole") and the nodes are stitched together once at the end. This costs one more copy
// of each byte, and buys the freedom Codable gives encoders: a nested container or super encoder
// may be filled after its parent has moved on, and the text still comes out in the order the
// parent made them. Members come out in the order they were encoded (a synthesized Encodable
// encodes in declaration order); a key encoded twice appears twice (parsers keep the last).
//
// Misuse that Codable reports through non-throwing calls (a keyed container asked of a value
// already encoded as an array, nesting too deep) is remembered and thrown when encoding ends.

/// One encoded value in the making: an object, an array, a single value, or nothing yet.
///
/// Its mutable state is `@exclusivity(unchecked)`: a node lives within one `JSONText(encoding:)`
/// call on one thread, and its state is changed only by its own methods, none of which calls
/// out while it modifies it; the run-time access checks cost a quarter of the encoding time.
final class JSONEncodingNode {
    enum Kind {
        case empty, object, array, single
    }

    @exclusivity(unchecked) var kind: Kind = .empty
    /// Members or elements written so far (for the commas).
    @exclusivity(unchecked) var count = 0
    /// This value's text between its brackets, without the children's texts.
    @exclusivity(unchecked) var out = JSONOutput(capacity: 64)
    /// Children that go at byte offsets of `out` (ascending).
    @exclusivity(unchecked) var holes: [(offset: Int, node: JSONEncodingNode)] = []
    /// The enclosing value (strong; `tearDown` breaks the cycles when encoding ends).
    var parent: JSONEncodingNode?
    /// Where this value is in its parent; nil when it is the parent's single value.
    let key: (any CodingKey)?
    /// Values (of any kind) around this one.
    let depth: Int
    let state: JSONEncodingState

    init(parent: JSONEncodingNode?, key: (any CodingKey)?, state: JSONEncodingState) {
        self.parent = parent
        self.key = key
        self.depth = parent.map { $0.depth &+ 1 } ?? 0
        self.state = state
    }

    var codingPath: [any CodingKey] {
        var keys: [any CodingKey] = []
        var node: JSONEncodingNode? = self
        while let n = node {
            if let key = n.key { keys.append(key) }
            node = n.parent
        }
        return keys.reversed()
    }

    // MARK: Structure

    /// Makes this value an object or an array (again: a class and its superclass may both ask
    /// for the same container); false, with the error noted, if it already is something else.
    func become(_ wanted: Kind) -> Bool {
        if kind == .empty { kind = wanted }
        guard kind == wanted else {
            state.note(EncodingError.invalidValue(wanted == .object ? "object" : "array", .init(
                codingPath: codingPath,
                debugDescription: "a \(wanted == .object ? "keyed" : "unkeyed") container was asked for at "
                    + "\(JSONCodingPath.describe(codingPath)), which already holds \(kindDescription)")))
            return false
        }
        return true
    }

    var kindDescription: String {
        switch kind {
        case .empty: return "nothing"
        case .object: return "an object"
        case .array: return "an array"
        case .single: return "a single value"
        }
    }

    /// Writes the comma (if needed), and for objects the key and colon, of the next member.
    func beginMember(_ key: (any CodingKey)?) {
        if count > 0 { out.append(JSONByte.comma) }
        count &+= 1
        if let key {
            let name = key.stringValue  // user code, run before `out` is modified
            out.writeString(name)
            out.append(JSONByte.colon)
        }
    }

    /// A child value at the current end of `out` (its member begun), or nil with the error
    /// noted if it would nest deeper than the parser accepts.
    func makeChild(key: (any CodingKey)?) -> JSONEncodingNode? {
        let child = JSONEncodingNode(parent: self, key: key, state: state)
        guard child.depth <= JSONValue.maxDepth else {
            state.note(tooDeep(child.codingPath))
            return nil
        }
        holes.append((out.count, child))
        return child
    }

    /// A node that goes nowhere, for containers asked for in error (the error is noted).
    func detachedChild(key: (any CodingKey)?) -> JSONEncodingNode {
        JSONEncodingNode(parent: self, key: key, state: state)
    }

    func tooDeep(_ path: [any CodingKey]) -> EncodingError {
        EncodingError.invalidValue(path.count, .init(
            codingPath: path,
            debugDescription: "values nest deeper than \(JSONValue.maxDepth) at \(JSONCodingPath.describe(path))"))
    }

    // MARK: Values

    /// Writes `value` at the end of `out` (its member begun); `key` is its place in this
    /// value, for the coding path.
    func write<T: Encodable>(_ value: T, key: (any CodingKey)?) throws {
        // Scalars and JSON texts by type (a metadata comparison each), with no encoder in between.
        if T.self == String.self {
            out.writeString(value as! String)
        } else if T.self == Int.self {
            out.writeInteger(Int64(value as! Int))
        } else if T.self == Bool.self {
            out.append((value as! Bool) ? "true" : "false")
        } else if T.self == Double.self {
            try writeDouble(value as! Double, key: key)
        } else if T.self == JSONText.self {
            writeText(value as! JSONText)
        } else if T.self == JSONValue.self {
            out.write(value as! JSONValue)
        } else if T.self == Int64.self {
            out.writeInteger(value as! Int64)
        } else if T.self == UInt64.self {
            writeUnsigned(value as! UInt64)
        } else if T.self == Float.self {
            try writeFloat(value as! Float, key: key)
        } else if T.self == Int32.self {
            out.writeInteger(Int64(value as! Int32))
        } else if T.self == UInt.self {
            writeUnsigned(UInt64(value as! UInt))
        } else if T.self == UInt32.self {
            out.writeInteger(Int64(value as! UInt32))
        } else if T.self == Int16.self {
            out.writeInteger(Int64(value as! Int16))
        } else if T.self == UInt16.self {
            out.writeInteger(Int64(value as! UInt16))
        } else if T.self == Int8.self {
            out.writeInteger(Int64(value as! Int8))
        } else if T.self == UInt8.self {
            out.writeInteger(Int64(value as! UInt8))
        } else {
            guard let child = makeChild(key: key) else { throw state.error ?? tooDeep(codingPath) }
            try value.encode(to: JSONValueEncoder(node: child))
        }
    }

    func writeNull() {
        out.append("null")
    }

    /// UInt64 beyond Int64: all but the last digit through the one integer writer, then the last.
    func writeUnsigned(_ value: UInt64) {
        if value <= UInt64(Int64.max) {
            out.writeInteger(Int64(value))
        } else {
            out.writeInteger(Int64(value / 10))
            out.append(JSONByte.zero &+ UInt8(value % 10))
        }
    }

    func writeDouble(_ value: Double, key: (any CodingKey)?) throws {
        guard value.isFinite else { throw nonFinite(value, key: key) }
        out.writeNumber(value)
    }

    /// Floats in their own shortest form: 0.1 as a Float is "0.1", not the Double
    /// 0.10000000149011612 it widens to.
    func writeFloat(_ value: Float, key: (any CodingKey)?) throws {
        guard value.isFinite else { throw nonFinite(value, key: key) }
        let wide = Double(value)
        if wide.magnitude < 9_007_199_254_740_992.0, Double(Int64(wide)) == wide {
            out.writeNumber(wide)  // integral: "3", not "3.0"
        } else {
            var text = value.description  // "0.1", "1e-07", "3.4028235e+38": valid JSON numbers
            text.withUTF8 { out.append($0.baseAddress!, count: $0.count) }
        }
    }

    func nonFinite(_ value: Any, key: (any CodingKey)?) -> EncodingError {
        let path = JSONCodingPath.appending(codingPath, key)
        return EncodingError.invalidValue(value, .init(
            codingPath: path,
            debugDescription: "\(value) at \(JSONCodingPath.describe(path)) is not a finite number; JSON has no spelling for it"))
    }

    /// A JSON text goes in as its bytes (whitespace around it left out).
    func writeText(_ text: JSONText) {
        text.bytes.withUnsafeBufferPointer { buf in
            var start = 0
            var end = buf.count
            while start < end, JSONByte.isWhitespace(buf[start]) { start &+= 1 }
            while end > start, JSONByte.isWhitespace(buf[end &- 1]) { end &-= 1 }
            guard end > start else { out.append("null"); return }  // `unchecked` empty text
            out.append(buf.baseAddress! + start, count: end &- start)
        }
    }

    // MARK: Output

    /// Appends this value's whole text, children included.
    func flatten(into output: inout JSONOutput) {
        let close: UInt8?
        switch kind {
        case .empty:
            output.append("{}")  // a value that encoded nothing, like JSONEncoder
            return
        case .object:
            output.append(JSONByte.openBrace)
            close = JSONByte.closeBrace
        case .array:
            output.append(JSONByte.openBracket)
            close = JSONByte.closeBracket
        case .single:
            close = nil
        }
        out.withBytes { bytes in
            var run = 0
            for (offset, child) in holes {
                if run < offset { output.append(bytes.baseAddress! + run, count: offset &- run) }
                child.flatten(into: &output)
                run = offset
            }
            if run < bytes.count { output.append(bytes.baseAddress! + run, count: bytes.count &- run) }
        }
        if let close { output.append(close) }
    }

    /// Bytes of the whole text (a guess for the output's capacity).
    var totalCount: Int {
        var n = out.count &+ 2
        for (_, child) in holes { n &+= child.totalCount }
        return n
    }

    /// Breaks the parent <-> child reference cycles.
    func tearDown() {
        for (_, child) in holes { child.tearDown() }
        holes = []
        parent = nil
    }
}

/// What one encoding shares: the first error noted where Codable gives no way to throw.
final class JSONEncodingState {
    private(set) var error: EncodingError?

    func note(_ error: EncodingError) {
        if self.error == nil { self.error = error }
    }
}

// MARK: - Encoder

/// The encoder handed to a value's `encode(to:)`: the value's node.
struct JSONValueEncoder: Encoder {
    let node: JSONEncodingNode

    var codingPath: [any CodingKey] { node.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let target = node.become(.object) ? node : node.detachedChild(key: nil)
        return KeyedEncodingContainer(JSONKeyedEncoding<Key>(node: target))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        JSONUnkeyedEncoding(node: node.become(.array) ? node : node.detachedChild(key: nil))
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        JSONSingleValueEncoding(node: node)
    }
}

struct JSONKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: JSONEncodingNode

    var codingPath: [any CodingKey] { node.codingPath }

    mutating func encodeNil(forKey key: Key) throws {
        node.beginMember(key)
        node.writeNull()
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.beginMember(key)
        try node.write(value, key: key)
    }

    // The scalar requirements: one path (`write` picks the scalar by type).
    mutating func encode(_ value: Bool, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encodeScalar(value, forKey: key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encodeScalar(value, forKey: key) }

    private mutating func encodeScalar<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.beginMember(key)
        try node.write(value, key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        node.beginMember(key)
        guard let child = node.makeChild(key: key), child.become(.object) else {
            node.writeNull()  // keeps the text well formed; the noted error is thrown at the end
            return KeyedEncodingContainer(JSONKeyedEncoding<NestedKey>(node: node.detachedChild(key: key)))
        }
        return KeyedEncodingContainer(JSONKeyedEncoding<NestedKey>(node: child))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        node.beginMember(key)
        guard let child = node.makeChild(key: key), child.become(.array) else {
            node.writeNull()
            return JSONUnkeyedEncoding(node: node.detachedChild(key: key))
        }
        return JSONUnkeyedEncoding(node: child)
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(key: JSONCodingKey.superKey)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(key: key)
    }

    private func superEncoder(key: any CodingKey) -> any Encoder {
        node.beginMember(key)
        guard let child = node.makeChild(key: key) else {
            node.writeNull()
            return JSONValueEncoder(node: node.detachedChild(key: key))
        }
        return JSONValueEncoder(node: child)
    }
}

struct JSONUnkeyedEncoding: UnkeyedEncodingContainer {
    let node: JSONEncodingNode

    var codingPath: [any CodingKey] { node.codingPath }
    var count: Int { node.count }

    mutating func encodeNil() throws {
        node.beginMember(nil)
        node.writeNull()
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = node.count
        node.beginMember(nil)
        try node.write(value, key: JSONIndexKey(index))
    }

    mutating func encode(_ value: Bool) throws { try encodeScalar(value) }
    mutating func encode(_ value: String) throws { try encodeScalar(value) }
    mutating func encode(_ value: Double) throws { try encodeScalar(value) }
    mutating func encode(_ value: Float) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int8) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int16) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int32) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int64) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt8) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt16) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt32) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt64) throws { try encodeScalar(value) }

    private mutating func encodeScalar<T: Encodable>(_ value: T) throws {
        let index = node.count
        node.beginMember(nil)
        try node.write(value, key: JSONIndexKey(index))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let key = JSONIndexKey(node.count)
        node.beginMember(nil)
        guard let child = node.makeChild(key: key), child.become(.object) else {
            node.writeNull()
            return KeyedEncodingContainer(JSONKeyedEncoding<NestedKey>(node: node.detachedChild(key: key)))
        }
        return KeyedEncodingContainer(JSONKeyedEncoding<NestedKey>(node: child))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let key = JSONIndexKey(node.count)
        node.beginMember(nil)
        guard let child = node.makeChild(key: key), child.become(.array) else {
            node.writeNull()
            return JSONUnkeyedEncoding(node: node.detachedChild(key: key))
        }
        return JSONUnkeyedEncoding(node: child)
    }

    mutating func superEncoder() -> any Encoder {
        let key = JSONIndexKey(node.count)
        node.beginMember(nil)
        guard let child = node.makeChild(key: key) else {
            node.writeNull()
            return JSONValueEncoder(node: node.detachedChild(key: key))
        }
        return JSONValueEncoder(node: child)
    }
}

struct JSONSingleValueEncoding: SingleValueEncodingContainer {
    let node: JSONEncodingNode

    var codingPath: [any CodingKey] { node.codingPath }

    /// A single value container holds one value, once.
    private func claim() throws {
        guard node.kind == .empty else {
            throw EncodingError.invalidValue("single value", .init(
                codingPath: codingPath,
                debugDescription: "a single value was encoded at \(JSONCodingPath.describe(codingPath)), "
                    + "which already holds \(node.kindDescription)"))
        }
        node.kind = .single
    }

    mutating func encodeNil() throws {
        try claim()
        node.writeNull()
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try claim()
        try node.write(value, key: nil)
    }

    mutating func encode(_ value: Bool) throws { try encodeScalar(value) }
    mutating func encode(_ value: String) throws { try encodeScalar(value) }
    mutating func encode(_ value: Double) throws { try encodeScalar(value) }
    mutating func encode(_ value: Float) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int8) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int16) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int32) throws { try encodeScalar(value) }
    mutating func encode(_ value: Int64) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt8) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt16) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt32) throws { try encodeScalar(value) }
    mutating func encode(_ value: UInt64) throws { try encodeScalar(value) }

    private mutating func encodeScalar<T: Encodable>(_ value: T) throws {
        try claim()
        try node.write(value, key: nil)
    }
}

// MARK: - Entry point

enum JSONEncoding {
    /// The compact JSON text of `value`.
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let state = JSONEncodingState()
        let root = JSONEncodingNode(parent: nil, key: nil, state: state)
        defer { root.tearDown() }
        root.kind = .single
        try root.write(value, key: nil)
        if let error = state.error { throw error }
        var output = JSONOutput(capacity: root.totalCount)
        root.flatten(into: &output)
        return output.makeArray()
    }
}
