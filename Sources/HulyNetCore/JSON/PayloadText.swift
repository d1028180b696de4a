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

    /// `[target, operation, data?]` at `range` of validated text: its parts, the data as the
    /// bytes it was written in (`null` when absent); nil when the shape is wrong.
    public static func containerRequest(in bytes: [UInt8], at range: Range<Int>)
        -> (target: ContainerUUID, operation: String, data: JSONText)? {
        guard let items = JSONScanner.arrayElements(bytes, in: range), items.count >= 2,
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
