// JSON text -> Decodable, without Foundation.
//
// The decoder reads the bytes, not a `JSONValue` tree: `JSONValue` numbers are Doubles, so
// 12345678901234567890 would arrive rounded, and its objects forget which text a member came
// from. One pass of the shared lexer (the parser's strictness and depth limit) builds a flat
// index of the text instead, one entry per value with its byte range; containers then find their
// members through it, and a number is converted from its own digits only when a type asks for it
// (integers exactly, Doubles correctly rounded), a string only when a type asks for it, and a
// `JSONText` member is its bytes as written.

/// One value of the text, in document order (a container is followed by its members; for an
/// object each member is its key, a string, and then its value).
struct JSONIndexEntry {
    enum Kind: UInt8 {
        case null, `false`, `true`, number, string, array, object
    }

    var kind: Kind
    /// Strings: whether an escape occurs (only then is decoding more than a copy).
    var escaped: Bool
    // 32-bit offsets and counts keep an entry at 20 bytes (texts over 4 GiB are refused).
    private var start32: UInt32
    private var end32: UInt32
    private var count32: UInt32
    private var next32: UInt32

    init(kind: Kind, escaped: Bool, start: Int, end: Int, count: Int, next: Int) {
        self.kind = kind
        self.escaped = escaped
        start32 = UInt32(truncatingIfNeeded: start)
        end32 = UInt32(truncatingIfNeeded: end)
        count32 = UInt32(truncatingIfNeeded: count)
        next32 = UInt32(truncatingIfNeeded: next)
    }

    /// The value's bytes (a string's include its quotes, a container's its brackets).
    var start: Int { Int(start32) }
    var end: Int {
        get { Int(end32) }
        set { end32 = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Containers: elements, or members.
    var count: Int {
        get { Int(count32) }
        set { count32 = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Index of the entry after this value and everything in it.
    var next: Int {
        get { Int(next32) }
        set { next32 = UInt32(truncatingIfNeeded: newValue) }
    }

    /// Offsets and entry counts below this fit the entry.
    static var maxTextSize: Int { Int(UInt32.max) }
}

/// The text being decoded and its index.
final class JSONDecodingContext: Sendable {
    let bytes: [UInt8]
    let entries: [JSONIndexEntry]

    init(bytes: [UInt8]) throws(JSONError) {
        self.bytes = bytes
        self.entries = try bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONError) in try JSONDecodingContext.index(buf) }
        }.get()
    }

    /// Validates `buf` as exactly one JSON value (like the parser) and indexes it. Iterative, so
    /// nesting never grows the call stack; deeper than `JSONValue.maxDepth` is an error.
    static func index(_ buf: UnsafeBufferPointer<UInt8>) throws(JSONError) -> [JSONIndexEntry] {
        guard buf.count < JSONIndexEntry.maxTextSize else {
            throw JSONError("text of \(buf.count) bytes is too large to decode", at: 0)
        }
        var lexer = JSONLexer(buf)
        var entries: [JSONIndexEntry] = []
        entries.reserveCapacity(buf.count / 8 &+ 4)  // a guess: a value every eight bytes or so
        var open: [Int] = []  // entries of the containers open around the current value

        func scalar(_ kind: JSONIndexEntry.Kind, _ start: Int, _ end: Int, escaped: Bool = false) -> JSONIndexEntry {
            JSONIndexEntry(kind: kind, escaped: escaped, start: start, end: end, count: 0, next: entries.count &+ 1)
        }
        /// `"key" ws : ws`, the key as an entry.
        func key() throws(JSONError) {
            guard lexer.pos < lexer.end, buf[lexer.pos] == JSONByte.quote else { throw lexer.unexpected() }
            let start = lexer.pos
            let token = try lexer.scanString()
            entries.append(scalar(.string, start, lexer.pos, escaped: token.escaped))
            lexer.skipWhitespace()
            try lexer.expect(JSONByte.colon)
            lexer.skipWhitespace()
        }

        lexer.skipWhitespace()
        value: while true {
            guard lexer.pos < lexer.end else { throw lexer.unexpected() }
            let start = lexer.pos
            let c = buf[start]
            switch c {
            case JSONByte.openBrace, JSONByte.openBracket:
                guard open.count < JSONValue.maxDepth else {
                    throw JSONError("nesting deeper than \(JSONValue.maxDepth)", at: start)
                }
                let isObject = c == JSONByte.openBrace
                let index = entries.count
                entries.append(JSONIndexEntry(kind: isObject ? .object : .array, escaped: false,
                                              start: start, end: start, count: 0, next: index &+ 1))
                lexer.pos &+= 1
                lexer.skipWhitespace()
                if lexer.peek == (isObject ? JSONByte.closeBrace : JSONByte.closeBracket) {
                    lexer.pos &+= 1
                    entries[index].end = lexer.pos
                } else {
                    open.append(index)
                    if isObject { try key() }
                    continue value
                }
            case JSONByte.quote:
                let token = try lexer.scanString()
                entries.append(scalar(.string, start, lexer.pos, escaped: token.escaped))
            case JSONByte.minus, JSONByte.zero...JSONByte.nine:
                let token = try lexer.scanNumber()
                try lexer.checkNumberRange(token)
                entries.append(scalar(.number, start, lexer.pos))
            case JSONByte.lowerT:
                try lexer.scanLiteral("true")
                entries.append(scalar(.true, start, lexer.pos))
            case JSONByte.lowerF:
                try lexer.scanLiteral("false")
                entries.append(scalar(.false, start, lexer.pos))
            case JSONByte.lowerN:
                try lexer.scanLiteral("null")
                entries.append(scalar(.null, start, lexer.pos))
            default:
                throw lexer.unexpected()
            }

            // A value is complete: count it, then go on or close the containers around it.
            while let top = open.last {
                entries[top].count &+= 1
                let isObject = entries[top].kind == .object
                lexer.skipWhitespace()
                guard lexer.pos < lexer.end else { throw lexer.unexpected() }
                let d = buf[lexer.pos]
                if d == JSONByte.comma {
                    lexer.pos &+= 1
                    lexer.skipWhitespace()
                    if isObject { try key() }
                    continue value
                }
                guard d == (isObject ? JSONByte.closeBrace : JSONByte.closeBracket) else { throw lexer.unexpected() }
                lexer.pos &+= 1
                entries[top].end = lexer.pos
                entries[top].next = entries.count
                open.removeLast()
            }
            break
        }
        lexer.skipWhitespace()
        if lexer.pos < lexer.end {
            throw JSONError("unexpected trailing \(JSONLexer.describe(buf[lexer.pos]))", at: lexer.pos)
        }
        return entries
    }

    /// The text `null`, for the decoder of an absent "super" member.
    static let null = try! JSONDecodingContext(bytes: Array("null".utf8))

    // MARK: Reading entries

    /// The string at entry `i` (a string entry), escapes decoded.
    func string(_ i: Int) -> String {
        let e = entries[i]
        return bytes.withUnsafeBufferPointer { buf in
            var scratch: [UInt8] = []
            let token = JSONStringToken(start: e.start &+ 1, end: e.end &- 1, escaped: e.escaped)
            return JSONLexer(buf).makeString(token, scratch: &scratch)
        }
    }

    /// Calls `body` with the key entry and the value entry of each member of the object at `i`.
    @inline(__always)
    func forEachMember(of i: Int, _ body: (_ key: Int, _ value: Int) -> Void) {
        var k = i &+ 1
        for _ in 0..<entries[i].count {
            body(k, k &+ 1)
            k = entries[k &+ 1].next
        }
    }

    /// The value entry of the last member of the object at `i` whose key is `name` (UTF-8).
    /// Keys are compared as Strings are (as the dictionary of larger objects does), with plain
    /// ASCII keys compared byte for byte.
    func member(of i: Int, named name: UnsafeBufferPointer<UInt8>) -> Int? {
        let nameIsASCII = name.allSatisfy { $0 < 0x80 }
        return bytes.withUnsafeBufferPointer { buf -> Int? in
            var found: Int?
            forEachMember(of: i) { key, value in
                let e = entries[key]
                let raw = UnsafeBufferPointer(rebasing: buf[(e.start &+ 1)..<(e.end &- 1)])
                if !e.escaped && nameIsASCII && raw.allSatisfy({ $0 < 0x80 }) {
                    if raw.count == name.count && raw.elementsEqual(name) { found = value }
                } else if string(key) == String(decoding: name, as: UTF8.self) {
                    found = value
                }
            }
            return found
        }
    }

    /// The scanned token of the number at entry `i` (a number entry, so already validated).
    func numberToken(_ i: Int) -> JSONNumberToken? {
        let e = entries[i]
        return bytes.withUnsafeBufferPointer { buf in
            var lexer = JSONLexer(buf, start: e.start, end: e.end)
            return try? lexer.scanNumber()
        }
    }

    func double(_ i: Int) -> Double? {
        guard let token = numberToken(i) else { return nil }
        return bytes.withUnsafeBufferPointer { buf in try? JSONLexer(buf).numberValue(token) }
    }

    /// The Float nearest to the number's text (converted once, from the text: going through
    /// Double could round twice); nil if it is beyond Float's range.
    func float(_ i: Int) -> Float? {
        guard let value = Float(text(i)), value.isFinite else { return nil }
        return value
    }

    /// The number at entry `i` if it is an integer whose magnitude fits in UInt64, exactly, from
    /// its digits (so 1e2 and 100.0 are 100, 1.5 is none). Never through Double.
    func integer(_ i: Int) -> (negative: Bool, magnitude: UInt64)? {
        guard let t = numberToken(i) else { return nil }
        return bytes.withUnsafeBufferPointer { buf -> (negative: Bool, magnitude: UInt64)? in
            let intStart = t.start &+ (t.negative ? 1 : 0)
            let fractionStart = intStart &+ t.integerDigits &+ 1
            let digits = t.integerDigits &+ t.fractionDigits
            @inline(__always) func digit(_ k: Int) -> UInt64 {
                UInt64(buf[k < t.integerDigits ? intStart &+ k : fractionStart &+ (k &- t.integerDigits)] &- JSONByte.zero)
            }
            // value = (all digits as one integer) * 10^shift. The exponent is saturated at about
            // ±10^8 by the lexer, far past where anything fits.
            let shift = t.exponent &- t.fractionDigits
            let kept = shift >= 0 ? digits : max(0, digits &+ shift)
            var m: UInt64 = 0
            for k in 0..<kept {
                let (times10, o1) = m.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(digit(k))
                if o1 || o2 { return nil }
                m = sum
            }
            for k in kept..<digits where digit(k) != 0 { return nil }  // a fraction: not an integer
            if shift > 0 && m != 0 {
                for _ in 0..<shift {
                    let (times10, overflow) = m.multipliedReportingOverflow(by: 10)
                    if overflow { return nil }
                    m = times10
                }
            }
            return (t.negative, m)
        }
    }

    /// The value's text exactly as written.
    func text(_ i: Int) -> String {
        let e = entries[i]
        return String(decoding: bytes[e.start..<e.end], as: UTF8.self)
    }

    /// The value's bytes as a `JSONText` (they are valid: the whole text was validated).
    func jsonText(_ i: Int) -> JSONText {
        let e = entries[i]
        return JSONText(unchecked: Array(bytes[e.start..<e.end]))
    }

    func jsonValue(_ i: Int) throws -> JSONValue {
        let e = entries[i]
        return try JSONValue.parse(bytes[e.start..<e.end])
    }

    /// What the value at `i` is, for messages: "string", "number 1.5", "object".
    func describe(_ i: Int) -> String {
        switch entries[i].kind {
        case .null: return "null"
        case .false, .true: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        case .number:
            let text = text(i)
            return "number " + (text.utf8.count <= 40 ? text : String(text.prefix(40)) + "…")
        }
    }

    // MARK: Decoding

    /// Decodes a `T` from entry `i`, at `path` followed by `key`.
    func decode<T: Decodable>(_ type: T.Type, at i: Int, path: [any CodingKey], key: (any CodingKey)?) throws -> T {
        // Scalars and JSON values by type (a metadata comparison each), with no decoder between.
        if T.self == String.self {
            guard entries[i].kind == .string else { throw mismatch(T.self, at: i, path, key) }
            return string(i) as! T
        } else if T.self == Int.self {
            return try decodeInteger(Int.self, at: i, path, key) as! T
        } else if T.self == Bool.self {
            switch entries[i].kind {
            case .true: return true as! T
            case .false: return false as! T
            default: throw mismatch(T.self, at: i, path, key)
            }
        } else if T.self == Double.self {
            guard entries[i].kind == .number else { throw mismatch(T.self, at: i, path, key) }
            guard let value = double(i) else { throw doesNotFit(T.self, at: i, path, key) }
            return value as! T
        } else if T.self == JSONText.self {
            return jsonText(i) as! T
        } else if T.self == JSONValue.self {
            return try jsonValue(i) as! T
        } else if T.self == Int64.self {
            return try decodeInteger(Int64.self, at: i, path, key) as! T
        } else if T.self == UInt64.self {
            return try decodeInteger(UInt64.self, at: i, path, key) as! T
        } else if T.self == Float.self {
            guard entries[i].kind == .number else { throw mismatch(T.self, at: i, path, key) }
            guard let value = float(i) else { throw doesNotFit(T.self, at: i, path, key) }
            return value as! T
        } else if T.self == Int32.self {
            return try decodeInteger(Int32.self, at: i, path, key) as! T
        } else if T.self == UInt.self {
            return try decodeInteger(UInt.self, at: i, path, key) as! T
        } else if T.self == UInt32.self {
            return try decodeInteger(UInt32.self, at: i, path, key) as! T
        } else if T.self == Int16.self {
            return try decodeInteger(Int16.self, at: i, path, key) as! T
        } else if T.self == UInt16.self {
            return try decodeInteger(UInt16.self, at: i, path, key) as! T
        } else if T.self == Int8.self {
            return try decodeInteger(Int8.self, at: i, path, key) as! T
        } else if T.self == UInt8.self {
            return try decodeInteger(UInt8.self, at: i, path, key) as! T
        }
        return try T(from: JSONValueDecoder(context: self, index: i, codingPath: JSONCodingPath.appending(path, key)))
    }

    func decodeInteger<I: FixedWidthInteger>(_ type: I.Type, at i: Int, _ path: [any CodingKey], _ key: (any CodingKey)?) throws -> I {
        guard entries[i].kind == .number else { throw mismatch(I.self, at: i, path, key) }
        guard let (negative, magnitude) = integer(i) else { throw doesNotFit(I.self, at: i, path, key) }
        if !negative {
            guard let value = I(exactly: magnitude) else { throw doesNotFit(I.self, at: i, path, key) }
            return value
        }
        if magnitude == 0 { return 0 }
        // -magnitude = -(magnitude - 1) - 1, which cannot overflow when magnitude - 1 fits.
        guard I.isSigned, let below = I(exactly: magnitude &- 1) else { throw doesNotFit(I.self, at: i, path, key) }
        return 0 &- below &- 1  // I is signed here, and 0 - below - 1 >= I.min
    }

    // MARK: Errors

    /// "expected Int at data.items[2], found string"; a null found is `valueNotFound`.
    func mismatch(_ type: Any.Type, at i: Int, _ path: [any CodingKey], _ key: (any CodingKey)?) -> DecodingError {
        let path = JSONCodingPath.appending(path, key)
        let context = DecodingError.Context(
            codingPath: path,
            debugDescription: "expected \(JSONDecodingContext.name(type)) at \(JSONCodingPath.describe(path)), found \(describe(i))")
        return entries[i].kind == .null ? .valueNotFound(type, context) : .typeMismatch(type, context)
    }

    func doesNotFit(_ type: Any.Type, at i: Int, _ path: [any CodingKey], _ key: (any CodingKey)?) -> DecodingError {
        let path = JSONCodingPath.appending(path, key)
        return .dataCorrupted(.init(
            codingPath: path,
            debugDescription: "\(describe(i)) at \(JSONCodingPath.describe(path)) does not fit in \(JSONDecodingContext.name(type))"))
    }

    static func name(_ type: Any.Type) -> String {
        if type == [String: JSONValue].self { return "an object" }
        if type == [JSONValue].self { return "an array" }
        return String(describing: type)
    }
}

// MARK: - Decoder

/// The decoder handed to a type's `init(from:)`: one value of the text.
struct JSONValueDecoder: Decoder {
    let context: JSONDecodingContext
    let index: Int
    let codingPath: [any CodingKey]

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard context.entries[index].kind == .object else {
            throw context.mismatch([String: JSONValue].self, at: index, codingPath, nil)
        }
        return KeyedDecodingContainer(JSONKeyedDecoding<Key>(context: context, object: index, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard context.entries[index].kind == .array else {
            throw context.mismatch([JSONValue].self, at: index, codingPath, nil)
        }
        return JSONUnkeyedDecoding(context: context, array: index, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        JSONSingleValueDecoding(context: context, index: index, codingPath: codingPath)
    }
}

struct JSONKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let context: JSONDecodingContext
    let codingPath: [any CodingKey]
    /// The object's entry.
    private let object: Int
    /// For larger objects, key -> value entry (a duplicate key: the last one, as the parser).
    private let lookup: [String: Int]?

    /// Objects up to this many members are searched in the index, comparing bytes (no strings
    /// made, no dictionary built: most objects a type decodes are small).
    private static var searchLimit: Int { 12 }

    init(context: JSONDecodingContext, object: Int, codingPath: [any CodingKey]) {
        self.context = context
        self.codingPath = codingPath
        self.object = object
        let count = context.entries[object].count
        if count > JSONKeyedDecoding.searchLimit {
            var lookup = [String: Int](minimumCapacity: count)
            context.forEachMember(of: object) { key, value in lookup[context.string(key)] = value }
            self.lookup = lookup
        } else {
            lookup = nil
        }
    }

    /// The value entry for `key`, if present.
    private func entry(_ key: any CodingKey) -> Int? {
        var name = key.stringValue
        if let lookup { return lookup[name] }
        return name.withUTF8 { context.member(of: object, named: $0) }
    }

    private func entryOrThrow(_ key: Key) throws -> Int {
        guard let i = entry(key) else {
            throw DecodingError.keyNotFound(key, .init(
                codingPath: codingPath,
                debugDescription: "no member \"\(key.stringValue)\" in the object at \(JSONCodingPath.describe(codingPath))"))
        }
        return i
    }

    var allKeys: [Key] {
        var names: [String] = []
        names.reserveCapacity(context.entries[object].count)
        context.forEachMember(of: object) { key, _ in names.append(context.string(key)) }
        var seen = Set<String>()
        var keys: [Key] = []
        keys.reserveCapacity(names.count)
        for name in names.reversed() where seen.insert(name).inserted {  // a duplicate: once
            if let key = Key(stringValue: name) { keys.append(key) }
        }
        return keys.reversed()
    }

    func contains(_ key: Key) -> Bool { entry(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        context.entries[try entryOrThrow(key)].kind == .null
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try context.decode(T.self, at: try entryOrThrow(key), path: codingPath, key: key)
    }

    /// Absent and null are both nil (one lookup, instead of the default's three).
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let i = entry(key), context.entries[i].kind != .null else { return nil }
        return try context.decode(T.self, at: i, path: codingPath, key: key)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(T: type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(T: type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(T: type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(T: type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(T: type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(T: type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(T: type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(T: type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(T: type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(T: type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(T: type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(T: type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(T: type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(T: type, key) }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try decodeIfPresent(T: type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try decodeIfPresent(T: type, key) }

    // The scalar requirements above: one path each (`decode(_:at:...)` picks the scalar by type).
    private func decode<T: Decodable>(T type: T.Type, _ key: Key) throws -> T {
        try context.decode(T.self, at: try entryOrThrow(key), path: codingPath, key: key)
    }

    private func decodeIfPresent<T: Decodable>(T type: T.Type, _ key: Key) throws -> T? {
        guard let i = entry(key), context.entries[i].kind != .null else { return nil }
        return try context.decode(T.self, at: i, path: codingPath, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(at: try entryOrThrow(key), key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder(at: try entryOrThrow(key), key: key).unkeyedContainer()
    }

    /// The member "super" (absent: null, as JSONDecoder does).
    func superDecoder() throws -> any Decoder {
        superDecoder(name: JSONCodingKey.superKey)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        superDecoder(name: key)
    }

    private func superDecoder(name key: any CodingKey) -> any Decoder {
        guard let found = entry(key) else {
            return JSONValueDecoder(context: JSONDecodingContext.null, index: 0, codingPath: codingPath + [key])
        }
        return decoder(at: found, key: key)
    }

    private func decoder(at i: Int, key: any CodingKey) -> JSONValueDecoder {
        JSONValueDecoder(context: context, index: i, codingPath: codingPath + [key])
    }
}

struct JSONUnkeyedDecoding: UnkeyedDecodingContainer {
    let context: JSONDecodingContext
    let codingPath: [any CodingKey]
    let count: Int?
    private(set) var currentIndex = 0
    /// The entry of the element at `currentIndex`.
    private var position: Int

    init(context: JSONDecodingContext, array: Int, codingPath: [any CodingKey]) {
        self.context = context
        self.codingPath = codingPath
        self.count = context.entries[array].count
        self.position = array &+ 1
    }

    var isAtEnd: Bool { currentIndex >= (count ?? 0) }

    private func atEnd(_ type: Any.Type) -> DecodingError {
        .valueNotFound(type, .init(
            codingPath: codingPath + [JSONIndexKey(currentIndex)],
            debugDescription: "expected \(JSONDecodingContext.name(type)) at "
                + "\(JSONCodingPath.describe(codingPath + [JSONIndexKey(currentIndex)])), "
                + "but the array has \(count ?? 0) element\(count == 1 ? "" : "s")"))
    }

    private mutating func advance() {
        position = context.entries[position].next
        currentIndex &+= 1
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw atEnd(Never?.self) }
        guard context.entries[position].kind == .null else { return false }
        advance()
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard !isAtEnd else { throw atEnd(T.self) }
        let value = try context.decode(T.self, at: position, path: codingPath, key: JSONIndexKey(currentIndex))
        advance()
        return value
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try decode(T: type) }
    mutating func decode(_ type: String.Type) throws -> String { try decode(T: type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try decode(T: type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try decode(T: type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try decode(T: type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decode(T: type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decode(T: type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decode(T: type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decode(T: type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decode(T: type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decode(T: type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decode(T: type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decode(T: type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decode(T: type) }

    private mutating func decode<T: Decodable>(T type: T.Type) throws -> T {
        guard !isAtEnd else { throw atEnd(T.self) }
        let value = try context.decode(T.self, at: position, path: codingPath, key: JSONIndexKey(currentIndex))
        advance()
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        guard !isAtEnd else { throw atEnd([String: JSONValue].self) }
        let container = try elementDecoder().container(keyedBy: type)
        advance()
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard !isAtEnd else { throw atEnd([JSONValue].self) }
        let container = try elementDecoder().unkeyedContainer()
        advance()
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        guard !isAtEnd else { throw atEnd(JSONValue.self) }
        let decoder = elementDecoder()
        advance()
        return decoder
    }

    private func elementDecoder() -> JSONValueDecoder {
        JSONValueDecoder(context: context, index: position, codingPath: codingPath + [JSONIndexKey(currentIndex)])
    }
}

struct JSONSingleValueDecoding: SingleValueDecodingContainer {
    let context: JSONDecodingContext
    let index: Int
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { context.entries[index].kind == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try context.decode(T.self, at: index, path: codingPath, key: nil)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try decode(T: type) }
    func decode(_ type: String.Type) throws -> String { try decode(T: type) }
    func decode(_ type: Double.Type) throws -> Double { try decode(T: type) }
    func decode(_ type: Float.Type) throws -> Float { try decode(T: type) }
    func decode(_ type: Int.Type) throws -> Int { try decode(T: type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decode(T: type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decode(T: type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decode(T: type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decode(T: type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decode(T: type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decode(T: type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decode(T: type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decode(T: type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decode(T: type) }

    private func decode<T: Decodable>(T type: T.Type) throws -> T {
        try context.decode(T.self, at: index, path: codingPath, key: nil)
    }
}

// MARK: - Entry point

enum JSONDecoding {
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let context: JSONDecodingContext
        do {
            context = try JSONDecodingContext(bytes: bytes)
        } catch {
            throw DecodingError.dataCorrupted(.init(
                codingPath: [], debugDescription: "not valid JSON: \(error.message)", underlyingError: error))
        }
        return try context.decode(T.self, at: 0, path: [], key: nil)
    }
}
