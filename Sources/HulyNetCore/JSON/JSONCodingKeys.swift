// What the Encodable writer (JSONEncoding.swift) and the Decodable reader (JSONDecoding.swift)
// share: the coding keys they make up (object members by name, array elements by index) and the
// way a coding path is spelt in their error messages ("data.items[2]").

/// An object member's key, for members no `CodingKey` type names (`JSONValue` objects, "super").
struct JSONCodingKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }

    static let superKey = JSONCodingKey(stringValue: "super")
}

/// An array element's position in a coding path.
struct JSONIndexKey: CodingKey {
    let index: Int
    var intValue: Int? { index }
    var stringValue: String { "Index \(index)" }

    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.index = intValue }
}

enum JSONCodingPath {
    /// `path` as one would write it in Swift or JavaScript: `data.items[2]`; "the top level" when
    /// empty.
    static func describe(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "the top level" }
        var text = ""
        for key in path {
            if let index = key as? JSONIndexKey {
                text += "[\(index.index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text
    }

    /// `path` followed by `key` if there is one.
    @inline(__always)
    static func appending(_ path: [any CodingKey], _ key: (any CodingKey)?) -> [any CodingKey] {
        guard let key else { return path }
        return path + [key]
    }
}
