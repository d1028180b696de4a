import Foundation
import XCTest
@testable import HulyNetCore

// MARK: - Types under test

private struct Item: Codable, Equatable {
    var id: Int
    var name: String
    var tags: [String]
    var score: Double?
}

private enum Color: String, Codable, Equatable { case red, green }
private enum Level: Int, Codable, Equatable { case low = 1, high = 9 }

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(width: Int, height: Int)
    case none
}

private struct Everything: Codable, Equatable {
    var bool: Bool
    var int: Int
    var int8: Int8
    var int16: Int16
    var int32: Int32
    var int64: Int64
    var uint: UInt
    var uint8: UInt8
    var uint16: UInt16
    var uint32: UInt32
    var uint64: UInt64
    var float: Float
    var double: Double
    var string: String
    var optional: Int?
    var color: Color
    var level: Level
    var shapes: [Shape]
    var items: [Item]
    var byName: [String: Int]
    var byNumber: [Int: String]
    var matrix: [[Int?]]
    var nested: [String: [Item]]
}

private struct Ordered: Codable, Equatable {
    var zeta: Int
    var alpha: String
    var mid: [Int]
}

private struct Envelope: Codable, Equatable {
    var id: Int
    var payload: JSONText
    var value: JSONValue
}

/// Fills a nested container after the parent has moved on (Codable allows it).
private struct OutOfOrder: Encodable {
    enum Keys: String, CodingKey { case first, second, third }
    enum Inner: String, CodingKey { case x, y }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var first = container.nestedContainer(keyedBy: Inner.self, forKey: .first)
        try container.encode("two", forKey: .second)
        var third = container.nestedUnkeyedContainer(forKey: .third)
        try first.encode(1, forKey: .x)
        try third.encode(true)
        try first.encode(2, forKey: .y)
        try third.encodeNil()
    }
}

private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

/// Encodes its superclass through `superEncoder()`, as the Codable documentation suggests.
private final class Dog: Animal {
    var good: Bool
    enum Keys: String, CodingKey { case good }

    init(name: String, good: Bool) {
        self.good = good
        super.init(name: name)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        good = try container.decode(Bool.self, forKey: .good)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(good, forKey: .good)
        try super.encode(to: container.superEncoder())
    }
}

/// Shares its superclass's container (asks the same encoder for a keyed container twice).
private final class Cat: Animal {
    var lives: Int
    enum Keys: String, CodingKey { case lives }

    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }

    required init(from decoder: any Decoder) throws {
        lives = try decoder.container(keyedBy: Keys.self).decode(Int.self, forKey: .lives)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(lives, forKey: .lives)
    }
}

private struct EncodesNothing: Encodable {
    func encode(to encoder: any Encoder) throws {}
}

private struct Empty: Codable, Equatable {}

/// Asks for an unkeyed container where it already has a keyed one.
private struct Confused: Encodable {
    enum Keys: CodingKey { case a }
    func encode(to encoder: any Encoder) throws {
        var keyed = encoder.container(keyedBy: Keys.self)
        try keyed.encode(1, forKey: .a)
        var unkeyed = encoder.unkeyedContainer()
        try unkeyed.encode(2)
    }
}

private struct TwoSingles: Encodable {
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(1)
        try container.encode(2)
    }
}

/// A chain as deep as asked for.
private final class Chain: Codable {
    var next: Chain?
    init(depth: Int) {
        next = depth > 1 ? Chain(depth: depth - 1) : nil
    }
}

private struct Wrapper<T: Codable & Equatable>: Codable, Equatable {
    var data: T
}

private struct Items: Codable, Equatable {
    var items: [Int]
}

private func text(_ s: String) -> String { s }

/// Round trip through `JSONText`: encode, decode, compare.
private func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws -> JSONText {
    let encoded = try JSONText(encoding: value)
    XCTAssertNoThrow(try JSONText(validating: encoded.bytes), "not valid JSON: \(encoded)", file: file, line: line)
    XCTAssertEqual(try encoded.decode(T.self), value, "\(encoded)", file: file, line: line)
    return encoded
}

private func decodingError<T: Decodable>(_ type: T.Type, _ json: String) -> DecodingError? {
    do {
        _ = try JSONText(validating: json).decode(type)
        return nil
    } catch let error as DecodingError {
        return error
    } catch {
        XCTFail("not a DecodingError: \(error)")
        return nil
    }
}

private func context(_ error: DecodingError?) -> DecodingError.Context? {
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c): return c
    default: return nil
    }
}

private func pathText(_ error: DecodingError?) -> String? {
    context(error).map { JSONCodingPath.describe($0.codingPath) }
}

final class JSONTextCodableTests: XCTestCase {

    // MARK: - Round trips

    func testRoundTripOfEverything() throws {
        let value = Everything(
            bool: true, int: -42, int8: -128, int16: 32767, int32: -2_147_483_648, int64: .min,
            uint: .max, uint8: 255, uint16: 65535, uint32: .max, uint64: .max,
            float: 0.1, double: -1.25e-300, string: "héllo \"wörld\"\n\t\\ 😀 \u{01}", optional: nil,
            color: .green, level: .high,
            shapes: [.circle(radius: 1.5), .rect(width: 2, height: 3), .none],
            items: [Item(id: 1, name: "a", tags: [], score: nil), Item(id: 2, name: "", tags: ["x", "y"], score: 0.5)],
            byName: ["one": 1, "two": 2, "": 0],
            byNumber: [1: "one", -7: "minus seven"],
            matrix: [[1, nil, 3], [], [nil]],
            nested: ["k": [Item(id: 3, name: "c", tags: ["z"], score: 1e300)]])
        _ = try roundTrip(value)
    }

    func testTopLevelScalarsAndOptionals() throws {
        XCTAssertEqual(try JSONText(encoding: 5).string, "5")
        XCTAssertEqual(try JSONText(encoding: "a\"b").string, #""a\"b""#)
        XCTAssertEqual(try JSONText(encoding: true).string, "true")
        XCTAssertEqual(try JSONText(encoding: Int?.none).string, "null")
        XCTAssertEqual(try JSONText(encoding: [1, nil, 3] as [Int?]).string, "[1,null,3]")
        XCTAssertEqual(try JSONText(encoding: [String]()).string, "[]")
        XCTAssertEqual(try JSONText(encoding: [String: Int]()).string, "{}")
        XCTAssertEqual(try JSONText(encoding: Color.red).string, #""red""#)
        XCTAssertEqual(try JSONText("null").decode(Int?.self), nil)
        XCTAssertEqual(try JSONText(" 7 ").decode(Int?.self), 7)
        XCTAssertEqual(try JSONText("[1,null]").decode([Int?].self), [1, nil])
        _ = try roundTrip(Empty())
        XCTAssertEqual(try JSONText(encoding: Empty()).string, "{}")
        // Like JSONEncoder: a value that encodes nothing is an empty object.
        XCTAssertEqual(try JSONText(encoding: EncodesNothing()).string, "{}")
        XCTAssertEqual(try JSONText(encoding: Wrapper(data: EncodesNothing2())).string, #"{"data":{}}"#)
    }

    private struct EncodesNothing2: Codable, Equatable {
        init() {}
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    func testOptionalMembers() throws {
        // Absent and null both decode to nil; nil members are left out when encoding.
        struct Opt: Codable, Equatable { var a: Int?; var b: String? }
        XCTAssertEqual(try JSONText(encoding: Opt(a: nil, b: "x")).string, #"{"b":"x"}"#)
        XCTAssertEqual(try JSONText(#"{"a":null}"#).decode(Opt.self), Opt(a: nil, b: nil))
        XCTAssertEqual(try JSONText(#"{}"#).decode(Opt.self), Opt(a: nil, b: nil))
        XCTAssertEqual(try JSONText(#"{"a":1,"b":"y"}"#).decode(Opt.self), Opt(a: 1, b: "y"))
    }

    func testKeyOrderIsTheEncodingOrder() throws {
        let encoded = try roundTrip(Ordered(zeta: 1, alpha: "a", mid: [3, 2, 1]))
        XCTAssertEqual(encoded.string, #"{"zeta":1,"alpha":"a","mid":[3,2,1]}"#)
        XCTAssertEqual(try JSONText(encoding: [Ordered(zeta: 0, alpha: "", mid: [])]).string,
                       #"[{"zeta":0,"alpha":"","mid":[]}]"#)
    }

    func testDictionariesAndLargeObjects() throws {
        var big: [String: Int] = [:]
        for i in 0..<200 { big["key\(i)"] = i }
        _ = try roundTrip(big)
        _ = try roundTrip([7: "seven", -1: "minus one"])
        XCTAssertEqual(try JSONText(#"{"1":"a","20":"b"}"#).decode([Int: String].self), [1: "a", 20: "b"])
        // Duplicate keys: the last one wins, as in parsing (small objects are searched, large
        // ones hashed).
        XCTAssertEqual(try JSONText(#"{"a":1,"a":2}"#).decode([String: Int].self), ["a": 2])
        struct A: Decodable { var a: Int }
        XCTAssertEqual(try JSONText(#"{"a":1,"a":2}"#).decode(A.self).a, 2)
        var members = (0..<30).map { #""k\#($0)":\#($0)"# }
        members.append(#""k3":99"#)
        let dict = try JSONText(validating: "{" + members.joined(separator: ",") + "}").decode([String: Int].self)
        XCTAssertEqual(dict.count, 30)
        XCTAssertEqual(dict["k3"], 99)
    }

    func testKeysMatchAsStrings() throws {
        struct Accent: Decodable { var café: Int }  // "café" with a precomposed é in the source
        // Escaped, and decomposed (e + U+0301): the same String, in small and in large objects.
        XCTAssertEqual(try JSONText(#"{"caf\u00e9":1}"#).decode(Accent.self).café, 1)
        XCTAssertEqual(try JSONText(validating: "{\"cafe\u{301}\":2}").decode(Accent.self).café, 2)
        let filler = (0..<20).map { #""f\#($0)":0,"# }.joined()
        XCTAssertEqual(try JSONText(validating: "{" + filler + "\"cafe\u{301}\":3}").decode(Accent.self).café, 3)
        struct A: Decodable { var a: Int }
        XCTAssertEqual(try JSONText(#"{"\u0061":4}"#).decode(A.self).a, 4)
        XCTAssertNotNil(decodingError(A.self, #"{"A":1,"aa":2,"":3}"#))
    }

    // MARK: - Numbers

    func testBigIntegersAreExact() throws {
        XCTAssertEqual(try JSONText(encoding: Int64.max).string, "9223372036854775807")
        XCTAssertEqual(try JSONText(encoding: Int64.min).string, "-9223372036854775808")
        XCTAssertEqual(try JSONText(encoding: UInt64.max).string, "18446744073709551615")
        XCTAssertEqual(try JSONText(encoding: UInt64(Int64.max) + 1).string, "9223372036854775808")
        XCTAssertEqual(try JSONText(encoding: [UInt64(10_000_000_000_000_000_000)]).string, "[10000000000000000000]")
        XCTAssertEqual(try JSONText("9223372036854775807").decode(Int64.self), .max)
        XCTAssertEqual(try JSONText("-9223372036854775808").decode(Int64.self), .min)
        XCTAssertEqual(try JSONText("18446744073709551615").decode(UInt64.self), .max)
        // -Int64.min, one past Int64.max: a UInt64, not an Int64.
        XCTAssertEqual(try JSONText("9223372036854775808").decode(UInt64.self), 9_223_372_036_854_775_808)
        XCTAssertEqual(try JSONText("18446744073709551614").decode(UInt64.self), 18_446_744_073_709_551_614)
        XCTAssertEqual(try JSONText("9007199254740993").decode(Int.self), 9_007_199_254_740_993)  // 2^53 + 1
        for value: Int64 in [.max, .min, .max - 1, .min + 1, 0, -1, 1 << 53 + 1] {
            XCTAssertEqual(try roundTrip(value).decode(Int64.self), value)
        }
        for value: UInt64 in [.max, .max - 1, 0, 1 << 63] {
            XCTAssertEqual(try roundTrip(value).decode(UInt64.self), value)
        }
        // Integers spelt with a fraction or an exponent, exactly.
        XCTAssertEqual(try JSONText("1e2").decode(Int.self), 100)
        XCTAssertEqual(try JSONText("100.000").decode(Int.self), 100)
        XCTAssertEqual(try JSONText("-0").decode(Int.self), 0)
        XCTAssertEqual(try JSONText("0e999999999").decode(Int.self), 0)
        XCTAssertEqual(try JSONText("1.8446744073709551615e19").decode(UInt64.self), .max)
        XCTAssertEqual(try JSONText("12300e-2").decode(Int8.self), 123)
        XCTAssertEqual(try JSONText("-128").decode(Int8.self), -128)
    }

    func testIntegersOutOfRangeAreDataCorrupted() {
        let cases: [(Any.Type, String, (String) -> DecodingError?)] = [
            (Int64.self, "9223372036854775808", { decodingError(Int64.self, $0) }),
            (Int64.self, "-9223372036854775809", { decodingError(Int64.self, $0) }),
            (UInt64.self, "18446744073709551616", { decodingError(UInt64.self, $0) }),
            (UInt64.self, "-1", { decodingError(UInt64.self, $0) }),
            (Int8.self, "128", { decodingError(Int8.self, $0) }),
            (UInt8.self, "256", { decodingError(UInt8.self, $0) }),
            (Int.self, "1.5", { decodingError(Int.self, $0) }),
            (Int.self, "1e300", { decodingError(Int.self, $0) }),
            (Int.self, "1e-300", { decodingError(Int.self, $0) }),
            (Int.self, "123456789012345678901234567890", { decodingError(Int.self, $0) }),
        ]
        for (type, json, decode) in cases {
            guard case .dataCorrupted(let context)? = decode(json) else {
                XCTFail("\(json) as \(type): expected dataCorrupted")
                continue
            }
            XCTAssertTrue(context.debugDescription.contains("does not fit in \(type)"), context.debugDescription)
        }
        let error = decodingError(Wrapper<[UInt8]>.self, #"{"data":[1,2,300]}"#)
        XCTAssertEqual(pathText(error), "data[2]")
        XCTAssertEqual(context(error)?.debugDescription, "number 300 at data[2] does not fit in UInt8")
    }

    func testDoublesAndFloats() throws {
        XCTAssertEqual(try JSONText(encoding: 1e300).string, "1e+300")
        XCTAssertEqual(try JSONText("1e300").decode(Double.self), 1e300)
        XCTAssertEqual(try JSONText(encoding: 0.1).string, "0.1")
        XCTAssertEqual(try JSONText(encoding: 3.0).string, "3")
        XCTAssertEqual(try JSONText(encoding: -0.0).string, "-0")
        XCTAssertEqual(try JSONText(encoding: Float(0.1)).string, "0.1")  // not 0.10000000149011612
        XCTAssertEqual(try JSONText(encoding: Float(3)).string, "3")
        XCTAssertEqual(try JSONText(encoding: Float(1e10)).string, "10000000000")
        XCTAssertEqual(try JSONText("3").decode(Double.self), 3)
        XCTAssertEqual(try JSONText("0.1").decode(Float.self), Float(0.1))
        XCTAssertEqual(try JSONText("5e-324").decode(Double.self), 5e-324)
        for value: Double in [.pi, -.pi, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-7, 123456.789, 0.1 + 0.2] {
            XCTAssertEqual(try roundTrip(value).decode(Double.self).bitPattern, value.bitPattern)
        }
        for value: Float in [.pi, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-7, 16_777_217, 0.3] {
            XCTAssertEqual(try roundTrip(value).decode(Float.self).bitPattern, value.bitPattern)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let d = Double(bitPattern: generator.next())
            if d.isFinite { XCTAssertEqual(try roundTrip(d).decode(Double.self).bitPattern, d.bitPattern) }
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()))
            if f.isFinite { XCTAssertEqual(try roundTrip(f).decode(Float.self).bitPattern, f.bitPattern) }
        }
        guard case .dataCorrupted(let context)? = decodingError(Float.self, "1e300") else {
            return XCTFail("1e300 is not a Float")
        }
        XCTAssertEqual(context.debugDescription, "number 1e300 at the top level does not fit in Float")
    }

    func testNonFiniteNumbersAreRefused() {
        for value in [Double.nan, .infinity, -.infinity] {
            XCTAssertThrowsError(try JSONText(encoding: Wrapper(data: [1, value]))) { error in
                guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(JSONCodingPath.describe(context.codingPath), "data[1]")
                XCTAssertTrue(context.debugDescription.contains("at data[1] is not a finite number"), context.debugDescription)
            }
        }
        XCTAssertThrowsError(try JSONText(encoding: Float.nan))
        XCTAssertThrowsError(try JSONText(encoding: ["x": Float.infinity]))
    }

    // MARK: - Strings

    func testStringsEscapeAsJSONValueDoes() throws {
        let samples = ["", "plain", "quote \" backslash \\ slash /", "\u{00}\u{01}\u{1F}\u{7F}", "\n\r\t\u{08}\u{0C}",
                       "é ü 中文 😀 \u{2028}", String(repeating: "long text ", count: 50) + "\""]
        for s in samples {
            let encoded = try JSONText(encoding: s)
            XCTAssertEqual(encoded.bytes, JSONValue.string(s).serialized())
            XCTAssertEqual(try encoded.decode(String.self), s)
            XCTAssertEqual(try JSONText(encoding: [s: s]).decode([String: String].self), [s: s])
        }
        XCTAssertEqual(try JSONText(#""\u00e9\ud83d\ude00\n\/""#).decode(String.self), "é😀\n/")
    }

    // MARK: - Embedded JSON

    func testJSONTextIsEmbeddedAndCapturedVerbatim() throws {
        let payload: JSONText = #"{"b": 1, "a": [1.10, 1e2, 12345678901234567890]}"#
        let envelope = Envelope(id: 7, payload: payload, value: ["k": [1, "x", nil]])
        let encoded = try JSONText(encoding: envelope)
        XCTAssertEqual(encoded.string,
                       #"{"id":7,"payload":{"b": 1, "a": [1.10, 1e2, 12345678901234567890]},"value":{"k":[1,"x",null]}}"#)
        let decoded = try encoded.decode(Envelope.self)
        XCTAssertEqual(decoded, envelope)
        XCTAssertEqual(decoded.payload.bytes, payload.bytes)  // spelling, order and spaces as written
        // Whitespace around an embedded text is left out, inside it is kept.
        XCTAssertEqual(try JSONText(encoding: [JSONText(" [1 , 2] ")]).string, "[[1 , 2]]")
        // Inside a container decoded over the bytes: the member as written.
        let inner = try JSONText(#"{"x": {"z" : 1.50, "y":2}, "n": null}"#).decode([String: JSONText].self)
        XCTAssertEqual(inner["x"]?.string, #"{"z" : 1.50, "y":2}"#)
        XCTAssertEqual(inner["n"], .null)
    }

    func testJSONValueIsCodable() throws {
        let value: JSONValue = ["a": [1, 2.5, "s", nil, true, ["deep": [[]]]], "b": [:], "c": -0.0]
        XCTAssertEqual(try JSONText(encoding: value).value(), value)
        XCTAssertEqual(try JSONText(encoding: value).bytes, value.serialized())
        XCTAssertEqual(try JSONText(encoding: value).decode(JSONValue.self), value)
        XCTAssertEqual(try JSONText(encoding: Wrapper(data: value)).decode(Wrapper<JSONValue>.self).data, value)
        // Through Foundation's coders (the path other encoders and decoders take).
        let data = try JSONEncoder().encode(value)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: data), value)
        XCTAssertEqual(try JSONValue.parse(Array(data)), value)
        // JSONText through another decoder: re-serialized (the bytes as written are not available).
        let viaFoundation = try JSONDecoder().decode(Wrapper<JSONText>.self, from: Data(#"{"data": {"x" : [1, 2]}}"#.utf8))
        XCTAssertEqual(viaFoundation.data.string, #"{"x":[1,2]}"#)
        let back = try JSONEncoder().encode(Wrapper(data: JSONText(#"[1, "a"]"#)))
        XCTAssertEqual(String(decoding: back, as: UTF8.self), #"{"data":[1,"a"]}"#)
    }

    // MARK: - Containers Codable allows

    func testNestedContainersFilledOutOfOrder() throws {
        XCTAssertEqual(try JSONText(encoding: OutOfOrder()).string,
                       #"{"first":{"x":1,"y":2},"second":"two","third":[true,null]}"#)
    }

    func testSuperEncoderAndSharedContainers() throws {
        let dog = try JSONText(encoding: Dog(name: "Rex", good: true))
        XCTAssertEqual(dog.string, #"{"good":true,"super":{"name":"Rex"}}"#)
        let decodedDog = try dog.decode(Dog.self)
        XCTAssertEqual(decodedDog.name, "Rex")
        XCTAssertTrue(decodedDog.good)
        let cat = try JSONText(encoding: Cat(name: "Tom", lives: 9))
        XCTAssertEqual(cat.string, #"{"name":"Tom","lives":9}"#)
        XCTAssertEqual(try cat.decode(Cat.self).lives, 9)
        // An absent "super" member decodes as null (as JSONDecoder does).
        XCTAssertThrowsError(try JSONText(#"{"good":false}"#).decode(Dog.self)) { error in
            guard case DecodingError.valueNotFound(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(JSONCodingPath.describe(context.codingPath), "super")
        }
    }

    func testContainerMisuseThrows() {
        XCTAssertThrowsError(try JSONText(encoding: Confused())) { error in
            guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(context.debugDescription.contains("already holds an object"), context.debugDescription)
        }
        XCTAssertThrowsError(try JSONText(encoding: TwoSingles())) { error in
            guard case EncodingError.invalidValue = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: - Decoding errors

    func testDecodingErrorsNameThePath() {
        typealias Doc = Wrapper<Items>
        var error = decodingError(Doc.self, #"{"data":{"items":[1,2,"x"]}}"#)
        guard case .typeMismatch(let type, let c)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(type == Int.self)
        XCTAssertEqual(c.debugDescription, "expected Int at data.items[2], found string")
        XCTAssertEqual(c.codingPath.map(\.stringValue), ["data", "items", "Index 2"])
        XCTAssertEqual(c.codingPath.last?.intValue, 2)

        error = decodingError(Doc.self, #"{"data":{"items":[1,null]}}"#)
        guard case .valueNotFound(_, let c)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(c.debugDescription, "expected Int at data.items[1], found null")

        error = decodingError(Doc.self, #"{"data":{"itemz":[]}}"#)
        guard case .keyNotFound(let key, let c)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(key.stringValue, "items")
        XCTAssertEqual(c.debugDescription, #"no member "items" in the object at data"#)

        error = decodingError(Doc.self, #"{"data":[1]}"#)
        guard case .typeMismatch(_, let c)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(c.debugDescription, "expected an object at data, found array")

        error = decodingError(Doc.self, #"{"data":{"items":{}}}"#)
        XCTAssertEqual(context(error)?.debugDescription, "expected an array at data.items, found object")

        error = decodingError(Wrapper<String>.self, #"{"data":1.5}"#)
        XCTAssertEqual(context(error)?.debugDescription, "expected String at data, found number 1.5")

        error = decodingError(Bool.self, #""true""#)
        XCTAssertEqual(context(error)?.debugDescription, "expected Bool at the top level, found string")

        error = decodingError(Color.self, #""blue""#)
        guard case .dataCorrupted? = error else { return XCTFail("\(String(describing: error))") }

        // A tuple-like unkeyed decode that runs out of elements.
        struct Pair: Decodable {
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                _ = try c.decode(Int.self)
                _ = try c.decode(Int.self)
            }
        }
        struct HoldsPair: Decodable { var data: Pair }
        error = decodingError(HoldsPair.self, #"{"data":[1]}"#)
        guard case .valueNotFound(_, let c)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(c.debugDescription, "expected Int at data[1], but the array has 1 element")

        // Text that is not JSON at all (possible only through `unchecked`).
        error = decodingError(Int.self, "1")
        XCTAssertNil(error)
        XCTAssertThrowsError(try JSONText(unchecked: Array("[1,".utf8)).decode([Int].self)) { error in
            guard case DecodingError.dataCorrupted(let c) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(c.debugDescription.hasPrefix("not valid JSON: unexpected end of input"), c.debugDescription)
            XCTAssertTrue(c.underlyingError is JSONError)
        }
    }

    // MARK: - Hostile input

    func testDeepNestingIsRefused() throws {
        let limit = JSONValue.maxDepth
        let ok = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        XCTAssertNoThrow(try JSONText(validating: ok).decode(JSONValue.self))
        XCTAssertNoThrow(try JSONText(unchecked: Array(ok.utf8)).decode(JSONText.self))
        for depth in [limit + 1, 100_000] {
            let deep = Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8)
            XCTAssertThrowsError(try JSONText(unchecked: deep).decode(JSONValue.self)) { error in
                guard case DecodingError.dataCorrupted(let c) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(c.debugDescription.contains("nesting deeper than \(limit)"), c.debugDescription)
            }
        }
        // Encoding: a chain deeper than the parser accepts is refused, not written.
        XCTAssertNoThrow(try JSONText(encoding: Chain(depth: limit - 1)))
        XCTAssertThrowsError(try JSONText(encoding: Chain(depth: limit + 10))) { error in
            guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(context.debugDescription.contains("values nest deeper than \(limit)"), context.debugDescription)
        }
        let chain = try JSONText(encoding: Chain(depth: 100))
        XCTAssertNotNil(try chain.decode(Chain.self).next?.next)
    }

    func testMutatedInputNeverCrashes() throws {
        let source = Array(try JSONText(encoding: Wrapper(data: Items(items: [1, 2, 3]))).bytes)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var bytes = source
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: i)
                default: bytes.insert(Array(#"{}[]",:0-e"#.utf8).randomElement(using: &generator)!, at: i)
                }
                if bytes.isEmpty { break }
            }
            // Unchecked on purpose: the decoder validates on its own.
            _ = try? JSONText(unchecked: bytes).decode(Wrapper<Items>.self)
            _ = try? JSONText(unchecked: bytes).decode(JSONValue.self)
            _ = try? JSONText(unchecked: bytes).decode([String: JSONText].self)
        }
    }

    // MARK: - JSONText and JSONScanner basics

    func testValidatingKeepsTheBytes() throws {
        let spaced = " \t{ \"b\" : [1 , 2.50 ],\n \"a\":null }\r\n"
        let text = try JSONText(validating: spaced)
        XCTAssertEqual(text.bytes, Array(spaced.utf8))
        XCTAssertEqual(text.string, spaced)
        XCTAssertEqual(try text.value(), ["b": [1, 2.5], "a": nil])
        XCTAssertNotEqual(text, try JSONText(validating: #"{"b":[1,2.5],"a":null}"#))  // byte equality
        for valid in ["0", "-1.5e-3", "\"\"", "[]", "{}", "true", "null", " [ ] "] {
            XCTAssertNoThrow(try JSONText(validating: valid), valid)
        }
        for invalid in ["", " ", "[1,]", "{\"a\"}", "01", "nul", "'x'", "[1] x", "{} {}", "1 2", "\"\u{01}\"", "1e400"] {
            XCTAssertThrowsError(try JSONText(validating: invalid), invalid)
        }
        XCTAssertThrowsError(try JSONText(validating: "[1]x")) { error in
            XCTAssertEqual((error as? JSONError)?.message, "unexpected trailing character 'x' at offset 3")
        }
        XCTAssertThrowsError(try JSONText(validating: [0x22, 0xFF, 0x22]))  // not UTF-8
    }

    func testArrayElements() throws {
        let bytes = Array(#" [ 1 , {"a": [2, 3]} ,"s" ,null ] "#.utf8)
        let ranges = try XCTUnwrap(JSONScanner.arrayElements(bytes, in: 0..<bytes.count))
        XCTAssertEqual(ranges.map { String(decoding: bytes[$0], as: UTF8.self) }, ["1", #"{"a": [2, 3]}"#, #""s""#, "null"])
        XCTAssertEqual(JSONScanner.arrayElements(Array("[]".utf8), in: 0..<2), [])
        XCTAssertEqual(JSONScanner.arrayElements(Array(" [ ] ".utf8), in: 0..<5), [])
        // A range inside a larger text.
        let outer = Array(#"{"params":[1,[2]],"x":0}"#.utf8)
        let inner = try XCTUnwrap(JSONScanner.arrayElements(outer, in: 10..<17))
        XCTAssertEqual(inner.map { String(decoding: outer[$0], as: UTF8.self) }, ["1", "[2]"])
        for invalid in ["{}", "1", "[1,]", "[1", "[1] x", "[,1]", "", "[1 2]"] {
            let b = Array(invalid.utf8)
            XCTAssertNil(JSONScanner.arrayElements(b, in: 0..<b.count), invalid)
        }
        XCTAssertNil(JSONScanner.arrayElements(bytes, in: 0..<(bytes.count + 1)))
        XCTAssertNil(JSONScanner.arrayElements(bytes, in: -1..<3))
    }

    /// The reading of validated text finds the validating scan's elements: strings that hold
    /// brackets, commas, escaped quotes and runs of backslashes, nested containers, whitespace.
    func testElementsOfValidArrayAreTheScansElements() throws {
        let texts = [
            #" [ 1 , {"a": [2, 3]} ,"s" ,null ] "#,
            #"[]"#, #" [ ] "#, #"[[]]"#, #"[{}]"#, #"[-1.5e3,true,false]"#,
            #"["a\"b", "c\\", "\\\"", "\\\\", "]", "[", ",", "\u005C\"", "x\\\\\"y"]"#,
            #"["t","op",{"s":"} ] , [","n":[{"k":"\"]"}]}]"#,
            "[\n\t\"é漢😀\"\r\n,\t0 ]",
            #"["a",1,"b"]"#,
        ]
        for text in texts {
            let bytes = Array(text.utf8)
            let scanned = try JSONScanner.topLevelArrayElements(bytes)
            XCTAssertEqual(JSONScanner.elementsOfValidArray(bytes, in: 0..<bytes.count), scanned, text)
        }
        // A range inside a larger text, and what is not an array.
        let outer = Array(#"{"params":["a\"]",[2]],"x":0}"#.utf8)
        let inner = try XCTUnwrap(JSONScanner.elementsOfValidArray(outer, in: 10..<22))
        XCTAssertEqual(inner.map { String(decoding: outer[$0], as: UTF8.self) }, [#""a\"]""#, "[2]"])
        XCTAssertNil(JSONScanner.elementsOfValidArray(Array("{}".utf8), in: 0..<2))
        XCTAssertNil(JSONScanner.elementsOfValidArray(Array("[1".utf8), in: 0..<2))
        XCTAssertNil(JSONScanner.elementsOfValidArray(outer, in: 0..<(outer.count + 1)))
        XCTAssertNil(JSONScanner.elementsOfValidArray(outer, in: -1..<3))
    }

    /// Text that is not valid gives no trap and no range outside the one asked about.
    func testElementsOfValidArrayStayInBoundsOnAnyText() {
        var random = SplitMix64(seed: 11)
        let alphabet = Array(#"[]{}",:\ a1"#.utf8)
        for _ in 0..<20_000 {
            let count = Int(random.next() % 24)
            var bytes = (0..<count).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            if random.next() % 2 == 0 { bytes.insert(UInt8(ascii: "["), at: 0) }
            let start = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count))
            let end = start + (bytes.count == start ? 0 : Int(random.next() % UInt64(bytes.count - start + 1)))
            for range in JSONScanner.elementsOfValidArray(bytes, in: start..<end) ?? [] {
                XCTAssertTrue(range.lowerBound >= start && range.upperBound <= end, "\(range) outside \(start)..<\(end) of \(bytes)")
            }
        }
    }
}
