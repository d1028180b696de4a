// The JSON texts the protocol wraps around a caller's data, written and read byte by byte: the
// data inside is copied as it is, never parsed or rewritten (docs/PROTOCOL.md, "Containers").

public enum PayloadText {
    /// `[method, params]`: a request's payload.
    public static func call(_ method: String, params: JSONText) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(params.bytes.count + method.utf8.count + 6)
        out.append(JSONByte.openBracket)
        JSONValue.appendString(method, to: &out)
        out.append(JSONByte.comma)
        params.write(to: &out)
        out.append(JSONByte.closeBracket)
        return out
    }

    /// `["cs", [target, operation, data]]`: a request for a container, through the coordinator
    /// or an agent's endpoint.
    public static func containerRequest(target: ContainerUUID, operation: String, data: JSONText) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.bytes.count + target.utf8.count + operation.utf8.count + 16)
        out.append(contentsOf: csPrefix)
        JSONValue.appendString(target, to: &out)
        out.append(JSONByte.comma)
        JSONValue.appendString(operation, to: &out)
        out.append(JSONByte.comma)
        data.write(to: &out)
        out.append(JSONByte.closeBracket)
        out.append(JSONByte.closeBracket)
        return out
    }

    private static let csPrefix: [UInt8] = Array(#"["cs",["#.utf8)

    /// `[operation, data]`: a request on a container's direct endpoint.
    public static func directRequest(operation: String, data: JSONText) -> [UInt8] {
        call(operation, params: data)
    }

    /// `[uuid, data]`: an event of a container reached through its agent's endpoint.
    public static func routedEvent(container: ContainerUUID, data: JSONText) -> [UInt8] {
        call(container, params: data)
    }

    /// `[target, operation, data?]` at `range` of text validated whole already (read, not checked
    /// again: an RPC server validated the request): its parts, the data as the
    /// bytes it was written in (`null` when absent); nil when the shape is wrong.
    public static func containerRequest(in bytes: [UInt8], at range: Range<Int>)
        -> (target: ContainerUUID, operation: String, data: JSONText)? {
        guard let items = JSONScanner.elementsOfValidArray(bytes, in: range), items.count >= 2,
              let target = JSONScanner.stringValue(bytes, in: items[0]),
              let operation = JSONScanner.stringValue(bytes, in: items[1]) else { return nil }
        return (target, operation, items.count > 2 ? JSONText(unchecked: Array(bytes[items[2]])) : .null)
    }

    /// `[uuid, data?]`, a routed event, validated whole here (it comes from a peer); nil when it
    /// is not one.
    public static func routedEvent(_ bytes: [UInt8]) -> (container: ContainerUUID, data: JSONText)? {
        guard let items = try? JSONScanner.topLevelArrayElements(bytes), !items.isEmpty,
              let uuid = JSONScanner.stringValue(bytes, in: items[0]) else { return nil }
        return (uuid, items.count > 1 ? JSONText(unchecked: Array(bytes[items[1]])) : .null)
    }

    /// A range of validated text as text of its own (`null` when the range is empty: an absent
    /// element).
    public static func text(_ bytes: [UInt8], _ range: Range<Int>) -> JSONText {
        range.isEmpty ? .null : JSONText(unchecked: Array(bytes[range]))
    }
}

/// The parts of a request the coordinator forwarded to an agent, read from
/// `["<agentId>", ["<target>", "<operation>", data?], extra?]` in one pass over the text, which
/// validates it as it goes (the data is the bytes its caller wrote; `extra` is the origin the
/// coordinator added, or nothing from the reference's coordinator).
public struct ForwardedRequest: Sendable {
    public var agentId: String
    public var target: ContainerUUID
    public var operation: String
    public var data: JSONText
    /// Where the trailing element lies in the text, if there is one.
    public var extra: Range<Int>?

    /// Nil unless `range` of `bytes` holds exactly that shape of valid JSON (trailing elements of
    /// the inner array are allowed, as the reference allows them, and ignored).
    public init?(in bytes: [UInt8], at range: Range<Int>) {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        let parts = bytes.withUnsafeBufferPointer { buf -> (String, String, String, Range<Int>?, Range<Int>?)? in
            var lexer = JSONLexer(buf, start: range.lowerBound, end: range.upperBound)
            var scratch: [UInt8] = []
            func string() -> String? {
                lexer.skipWhitespace()
                guard lexer.peek == JSONByte.quote, let token = try? lexer.scanString() else { return nil }
                return lexer.makeString(token, scratch: &scratch)
            }
            func punctuation(_ byte: UInt8) -> Bool {
                lexer.skipWhitespace()
                guard lexer.peek == byte else { return false }
                lexer.pos &+= 1
                return true
            }
            /// One value, validated; its range.
            func value() -> Range<Int>? {
                lexer.skipWhitespace()
                let start = lexer.pos
                guard (try? lexer.skipValue(openContainers: 2)) != nil else { return nil }
                return start..<lexer.pos
            }
            guard punctuation(JSONByte.openBracket), let agentId = string(), punctuation(JSONByte.comma),
                  punctuation(JSONByte.openBracket), let target = string(), punctuation(JSONByte.comma),
                  let operation = string() else { return nil }
            var data: Range<Int>?
            if punctuation(JSONByte.comma) {
                guard let first = value() else { return nil }
                data = first
                while punctuation(JSONByte.comma) { guard value() != nil else { return nil } }
            }
            guard punctuation(JSONByte.closeBracket) else { return nil }
            var extra: Range<Int>?
            if punctuation(JSONByte.comma) {
                guard let first = value() else { return nil }
                extra = first
                while punctuation(JSONByte.comma) { guard value() != nil else { return nil } }
            }
            guard punctuation(JSONByte.closeBracket) else { return nil }
            lexer.skipWhitespace()
            guard lexer.pos == lexer.end else { return nil }
            return (agentId, target, operation, data, extra)
        }
        guard let (agentId, target, operation, data, extra) = parts else { return nil }
        self.agentId = agentId
        self.target = target
        self.operation = operation
        self.data = data.map { JSONText(unchecked: Array(bytes[$0])) } ?? .null
        self.extra = extra
    }
}

extension JSONScanner {
    /// A request payload `[method, params]` split without reading `params`: the method, and the
    /// range from the first comma to the closing bracket (whitespace around excluded; empty
    /// when there is no comma). The params are NOT validated: whoever reads them must (parsing
    /// or scanning them does). Throws when the method or the brackets are wrong.
    public static func methodAndParams(_ bytes: [UInt8]) throws(JSONError) -> (method: String, params: Range<Int>) {
        try bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONError) -> (String, Range<Int>) in
                var lexer = JSONLexer(buf)
                lexer.skipWhitespace()
                try lexer.expect(JSONByte.openBracket)
                lexer.skipWhitespace()
                guard lexer.peek == JSONByte.quote else { throw lexer.unexpected() }
                let token = try lexer.scanString()
                var scratch: [UInt8] = []
                let method = lexer.makeString(token, scratch: &scratch)
                lexer.skipWhitespace()
                var end = buf.count
                while end > lexer.pos, JSONByte.isWhitespace(buf[end - 1]) { end -= 1 }
                guard end > lexer.pos, buf[end - 1] == JSONByte.closeBracket else {
                    throw JSONError("a request must end with ']'", at: end)
                }
                end -= 1
                if lexer.pos == end { return (method, end..<end) }
                try lexer.expect(JSONByte.comma)
                lexer.skipWhitespace()
                while end > lexer.pos, JSONByte.isWhitespace(buf[end - 1]) { end -= 1 }
                guard end > lexer.pos else { throw JSONError("a request's params are empty", at: lexer.pos) }
                return (method, lexer.pos..<end)
            }
        }.get()
    }
}
