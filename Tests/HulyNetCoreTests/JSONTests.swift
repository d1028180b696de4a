import XCTest
@testable import HulyNetCore

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The error thrown for `input`, or nil if it parses.
private func parseError(_ input: [UInt8]) -> JSONError? {
    do {
        _ = try JSONValue.parse(input)
        return nil
    } catch {
        return error
    }
}

private func scanError(_ input: [UInt8]) -> JSONError? {
    do {
        _ = try JSONScanner.topLevelArrayElements(input)
        return nil
    } catch {
        return error
    }
}

final class JSONTests: XCTestCase {

    // MARK: - Literals, accessors, subscripts

    func testLiteralConformances() {
        let null: JSONValue = nil
        XCTAssertEqual(null, .null)
        let yes: JSONValue = true
        XCTAssertEqual(yes, .bool(true))
        let int: JSONValue = 42
        XCTAssertEqual(int, .number(42))
        let float: JSONValue = 1.5
        XCTAssertEqual(float, .number(1.5))
        let string: JSONValue = "hi"
        XCTAssertEqual(string, .string("hi"))
        let array: JSONValue = [1, "a", nil, false]
        XCTAssertEqual(array, .array([.number(1), .string("a"), .null, .bool(false)]))
        let object: JSONValue = ["a": 1, "b": ["c": [true]]]
        XCTAssertEqual(object, .object(["a": .number(1), "b": .object(["c": .array([.bool(true)])])]))
        let duplicate: JSONValue = ["k": 1, "k": 2]
        XCTAssertEqual(duplicate, .object(["k": .number(2)]))
    }

    func testAccessors() {
        let v: JSONValue = ["s": "x", "n": 3, "f": 2.5, "b": true, "a": [1, 2], "o": ["k": nil], "z": nil]
        XCTAssertEqual(v["s"]?.stringValue, "x")
        XCTAssertNil(v["n"]?.stringValue)
        XCTAssertEqual(v["n"]?.doubleValue, 3)
        XCTAssertEqual(v["n"]?.intValue, 3)
        XCTAssertEqual(v["f"]?.doubleValue, 2.5)
        XCTAssertNil(v["f"]?.intValue)
        XCTAssertEqual(v["b"]?.boolValue, true)
        XCTAssertNil(v["s"]?.boolValue)
        XCTAssertEqual(v["a"]?.arrayValue, [1, 2])
        XCTAssertNil(v["o"]?.arrayValue)
        XCTAssertEqual(v["o"]?.objectValue, ["k": .null])
        XCTAssertNil(v["a"]?.objectValue)
        XCTAssertEqual(v["z"]?.isNull, true)
        XCTAssertEqual(v["s"]?.isNull, false)
        XCTAssertNil(v["missing"])
        XCTAssertNil(JSONValue.string("x")["s"])

        let a: JSONValue = [10, 20]
        XCTAssertEqual(a[0], 10)
        XCTAssertEqual(a[1], 20)
        XCTAssertNil(a[2])
        XCTAssertNil(a[-1])
        XCTAssertNil(v[0])
    }

    func testIntValueRange() {
        XCTAssertEqual(JSONValue.number(-0.0).intValue, 0)
        XCTAssertEqual(JSONValue.number(1e3).intValue, 1000)
        XCTAssertEqual(JSONValue.number(9_007_199_254_740_992).intValue, 9_007_199_254_740_992)
        XCTAssertEqual(JSONValue.number(-9_223_372_036_854_775_808.0).intValue, Int.min)
        XCTAssertNil(JSONValue.number(9_223_372_036_854_775_808.0).intValue)   // 2^63
        XCTAssertNil(JSONValue.number(-9_223_372_036_854_777_856.0).intValue)  // next below -2^63
        XCTAssertNil(JSONValue.number(0.5).intValue)
        XCTAssertNil(JSONValue.number(-1.5).intValue)
        XCTAssertNil(JSONValue.number(.nan).intValue)
        XCTAssertNil(JSONValue.number(.infinity).intValue)
        XCTAssertNil(JSONValue.string("1").intValue)
    }

    func testDescriptionIsCompactJSON() {
        let v: JSONValue = ["a": [1, "x", nil, true, 1.5]]
        XCTAssertEqual(v.description, #"{"a":[1,"x",null,true,1.5]}"#)
        XCTAssertEqual("\(JSONValue.string("q\""))", #""q\"""#)
        XCTAssertEqual(v.serializedString(), String(decoding: v.serialized(), as: UTF8.self))
    }

    // MARK: - Round trips

    func testRoundTripDocument() throws {
        let text = #"""
        {"id": "u1", "op": "find", "params": [1, -2.5, 1e-7, true, false, null, "é😀\n",
          {"nested": {"deep": [[], {}, [[[]]], ""]}}], "big": 12345678901234567890, "neg": -0}
        """#
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v["op"], "find")
        XCTAssertEqual(v["params"]?[6], "é😀\n")
        XCTAssertEqual(v["params"]?[7]?["nested"]?["deep"]?[2], [[[]]])
        XCTAssertEqual(v["big"]?.doubleValue, 1.2345678901234567e19)
        let again = try JSONValue.parse(v.serialized())
        XCTAssertEqual(again, v)
        XCTAssertEqual(try JSONValue.parse(v.serializedString()), v)
        XCTAssertEqual(try JSONValue.parse(v.description), v)
    }

    func testScalarsAtTopLevel() throws {
        XCTAssertEqual(try JSONValue.parse("null"), .null)
        XCTAssertEqual(try JSONValue.parse("true"), .bool(true))
        XCTAssertEqual(try JSONValue.parse("false"), .bool(false))
        XCTAssertEqual(try JSONValue.parse(" \t\r\n 7 \n"), .number(7))
        XCTAssertEqual(try JSONValue.parse(#""""#), .string(""))
        XCTAssertEqual(try JSONValue.parse("[]"), .array([]))
        XCTAssertEqual(try JSONValue.parse("{}"), .object([:]))
        XCTAssertEqual(try JSONValue.parse("[ ]"), .array([]))
        XCTAssertEqual(try JSONValue.parse("{ \n}"), .object([:]))
    }

    func testParseOverloads() throws {
        let text = #"[1,{"a":"b"}]"#
        let expected: JSONValue = [1, ["a": "b"]]
        XCTAssertEqual(try JSONValue.parse(text), expected)
        XCTAssertEqual(try JSONValue.parse(bytes(text)), expected)
        XCTAssertEqual(try JSONValue.parse(bytes("xx" + text)[2...]), expected)   // ArraySlice
        XCTAssertEqual(try JSONValue.parse(text.utf8), expected)                  // String.UTF8View
        let array = bytes(text)
        XCTAssertEqual(try JSONValue.parse(array.indices.lazy.map { array[$0] }), expected)  // non-contiguous
        let raw = try array.withUnsafeBytes { raw throws(JSONError) in try JSONValue.parse(raw) }
        XCTAssertEqual(raw, expected)
        XCTAssertEqual(parseError(array.indices.lazy.map { array[$0] }.dropLast())?.offset, 12)
        XCTAssertEqual(parseError([])?.offset, 0)
    }

    func testDuplicateKeysLastWins() throws {
        let v = try JSONValue.parse(#"{"a": 1, "b": 2, "a": 3}"#)
        XCTAssertEqual(v, ["a": 3, "b": 2])
        XCTAssertEqual(v.objectValue?.count, 2)
        let nested = try JSONValue.parse(#"{"a": {"x": 1}, "a": {"y": 2}}"#)
        XCTAssertEqual(nested, ["a": ["y": 2]])
    }

    func testWriteAppendsToExistingBuffer() {
        var buffer = bytes("prefix:")
        JSONValue.array([1, "a\n", ["k": nil]]).write(to: &buffer)
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), #"prefix:[1,"a\n",{"k":null}]"#)
        JSONValue.bool(false).write(to: &buffer)
        XCTAssertTrue(String(decoding: buffer, as: UTF8.self).hasSuffix("}]false"))
    }

    func testLargeValuesRoundTrip() throws {
        // Output far beyond the initial capacity guess, with escapes and non-ASCII mixed in.
        var big = ""
        for i in 0..<20_000 { big += i % 97 == 0 ? "\"\n\u{1}é😀" : "abcdefgh" }
        let numbers = JSONValue.array((0..<10_000).map { .number(Double($0) * 1.25 - 3000) })
        let document: JSONValue = ["big": .string(big), "numbers": numbers,
                                   "nested": .array(Array(repeating: ["x": [1, 2, 3]], count: 2000))]
        let written = document.serialized()
        XCTAssertGreaterThan(written.count, 200_000)
        XCTAssertEqual(try JSONValue.parse(written), document)
        XCTAssertEqual(document.serializedString().utf8.count, written.count)
        var appended: [UInt8] = [0x20]
        document.write(to: &appended)
        XCTAssertEqual(Array(appended.dropFirst()).count, written.count)
        XCTAssertEqual(try JSONValue.parse(appended), document)
    }

    func testErrorValue() {
        XCTAssertEqual(parseError(bytes("[1, x]")), JSONError(message: "unexpected character 'x' at offset 4", offset: 4))
        XCTAssertNotEqual(parseError(bytes("[1, x]")), JSONError(message: "unexpected character 'x' at offset 4", offset: 3))
        XCTAssertEqual("\(JSONError(message: "m", offset: 1))", "m")
    }

    // MARK: - Numbers

    func testParseNumbers() throws {
        func number(_ s: String) throws -> Double {
            try XCTUnwrap(try JSONValue.parse(s).doubleValue)
        }
        XCTAssertEqual(try number("0"), 0)
        XCTAssertEqual(try number("0").sign, .plus)
        XCTAssertEqual(try number("-0"), 0)
        XCTAssertEqual(try number("-0").sign, .minus)
        XCTAssertEqual(try number("-0.0").sign, .minus)
        XCTAssertEqual(try number("1e3"), 1000)
        XCTAssertEqual(try number("1E3"), 1000)
        XCTAssertEqual(try number("1e+3"), 1000)
        XCTAssertEqual(try number("1.5"), 1.5)
        XCTAssertEqual(try number("-1.5"), -1.5)
        XCTAssertEqual(try number("1e-7"), 1e-7)
        XCTAssertEqual(try number("0.1"), 0.1)
        XCTAssertEqual(try number("0.30000000000000004"), 0.30000000000000004)
        XCTAssertEqual(try number("9007199254740992"), 9_007_199_254_740_992)   // 2^53
        XCTAssertEqual(try number("9007199254740993"), 9_007_199_254_740_992)   // rounds to even
        XCTAssertEqual(try number("9007199254740995"), 9_007_199_254_740_996)
        XCTAssertEqual(try number("1700000000000"), 1_700_000_000_000)
        XCTAssertEqual(try number("12345678901234567890"), 1.2345678901234567e19)
        XCTAssertEqual(try number("-123456789012345678901234567890"), -1.2345678901234568e29)
        XCTAssertEqual(try number("1e23"), 1e23)
        XCTAssertEqual(try number("1e300"), 1e300)
        XCTAssertEqual(try number("1.7976931348623157e308"), .greatestFiniteMagnitude)
        XCTAssertEqual(try number("2.2250738585072014e-308"), .leastNormalMagnitude)
        XCTAssertEqual(try number("4.9406564584124654e-324"), .leastNonzeroMagnitude)
        XCTAssertEqual(try number("1e-400"), 0)       // underflow is zero, not an error
        XCTAssertEqual(try number("0e999999999"), 0)  // zero with a huge exponent is fine
        XCTAssertEqual(try number("0.000001234e6"), 1.234)
        XCTAssertEqual(try number("123.456e-2"), 1.23456)
        XCTAssertEqual(try number("100000000000000000000000000000e-29"), 1)
    }

    func testNumberConversionMatchesStandardLibrary() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<5000 {
            var text = rng.below(2) == 0 ? "-" : ""
            let intDigits = 1 + rng.below(20)
            text += String(1 + rng.below(9))
            for _ in 1..<intDigits { text += String(rng.below(10)) }
            if rng.below(2) == 0 {
                text += "."
                for _ in 0...rng.below(20) { text += String(rng.below(10)) }
            }
            if rng.below(2) == 0 { text += "e" + String(rng.below(80) - 40) }
            let expected = try XCTUnwrap(Double(text))
            let parsed = try JSONValue.parse(text).doubleValue
            XCTAssertEqual(parsed?.bitPattern, expected.bitPattern, text)
        }
    }

    func testWriteNumbers() {
        func written(_ d: Double) -> String { JSONValue.number(d).serializedString() }
        XCTAssertEqual(written(0), "0")
        XCTAssertEqual(written(-0.0), "-0")
        XCTAssertEqual(written(1), "1")
        XCTAssertEqual(written(-3), "-3")
        XCTAssertEqual(written(1e3), "1000")
        XCTAssertEqual(written(1_700_000_000_000), "1700000000000")
        XCTAssertEqual(written(9_007_199_254_740_991), "9007199254740991")
        XCTAssertEqual(written(-9_007_199_254_740_991), "-9007199254740991")
        XCTAssertEqual(written(1.5), "1.5")
        XCTAssertEqual(written(0.1), "0.1")
        XCTAssertEqual(written(-0.25), "-0.25")
        XCTAssertEqual(written(1e300), "1e+300")
        XCTAssertEqual(written(1e-7), "1e-07")
        XCTAssertEqual(written(.infinity), "null")
        XCTAssertEqual(written(-.infinity), "null")
        XCTAssertEqual(written(.nan), "null")
        XCTAssertEqual(JSONValue.array([.number(.nan), 1]).serializedString(), "[null,1]")
        // 2^53 and above: exact value survives, whatever the representation.
        for d in [9_007_199_254_740_992.0, 1e16, 1.8446744073709552e19, 1e21, 1.7976931348623157e308] {
            let text = written(d)
            XCTAssertFalse(text.contains("inf") || text.contains("nan"), text)
            XCTAssertEqual(try JSONValue.parse(text).doubleValue, d, text)
        }
    }

    func testNumberRoundTripRandomBitPatterns() throws {
        var rng = SplitMix64(seed: 42)
        var checked = 0
        for i in 0..<20000 {
            // Mix arbitrary bit patterns with integers and short decimals.
            let d: Double
            switch i % 3 {
            case 0: d = Double(bitPattern: rng.next())
            case 1: d = Double(Int64(bitPattern: rng.next()) >> (rng.next() % 64))
            default: d = Double(Int64(bitPattern: rng.next()) % 1_000_000) / 1000
            }
            guard d.isFinite else { continue }
            let back = try JSONValue.parse(JSONValue.number(d).serialized()).doubleValue
            XCTAssertEqual(back?.bitPattern, d.bitPattern, "\(d)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 19000)
    }

    // MARK: - Strings

    func testParseEveryEscape() throws {
        let v = try JSONValue.parse(#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u00E9 \u20AC \u0000 \u001f""#)
        XCTAssertEqual(v, .string("\" \\ / \u{8} \u{C} \n \r \t A é é € \u{0} \u{1F}"))
    }

    /// Long strings are scanned 32 and 8 bytes a step: whatever needs a look (a quote, an
    /// escape, a control character, non-ASCII) is found at every offset of and around a block.
    func testEveryByteThatNeedsALookIsFoundAtEveryOffset() throws {
        for length in [7, 8, 9, 31, 32, 33, 63, 64, 65, 100] {
            for at in 0..<length {
                func text(_ middle: String) -> [UInt8] {
                    [0x22] + bytes(String(repeating: "a", count: at) + middle + String(repeating: "b", count: length - at)) + [0x22]
                }
                let plain = String(repeating: "a", count: at) + String(repeating: "b", count: length - at)
                XCTAssertEqual(try JSONValue.parse(text("")), .string(plain))
                XCTAssertEqual(try JSONValue.parse(text("\\n")), .string(String(repeating: "a", count: at) + "\n" + String(repeating: "b", count: length - at)))
                XCTAssertEqual(try JSONValue.parse(text("é")), .string(String(repeating: "a", count: at) + "é" + String(repeating: "b", count: length - at)))
                XCTAssertThrowsError(try JSONValue.parse(text("\u{1}")), "control character at \(at) of \(length)")
                XCTAssertThrowsError(try JSONValue.parse(text("\"")), "quote at \(at) of \(length)")
                var invalidUTF8 = text("")
                invalidUTF8[1 + at] = 0xFF
                XCTAssertThrowsError(try JSONText(validating: invalidUTF8), "0xFF at \(at) of \(length)")
            }
        }
    }

    func testSurrogatePairs() throws {
        XCTAssertEqual(try JSONValue.parse(#""\ud83d\ude00""#), "😀")
        XCTAssertEqual(try JSONValue.parse(#""\uD834\uDD1E""#), "𝄞")
        XCTAssertEqual(try JSONValue.parse(#""\udbff\udfff""#), .string("\u{10FFFF}"))
        XCTAssertEqual(try JSONValue.parse(#""\ud800\udc00""#), .string("\u{10000}"))
        XCTAssertEqual(try JSONValue.parse(#""a\ud83d\ude00b\u00e9""#), "a😀bé")
    }

    func testRawUnicode() throws {
        let samples = ["é", "日本語", "😀", "a😀b", "\u{10FFFF}", "\u{7F}", "ÿ€𝄞\u{2028}\u{2029}"]
        for s in samples {
            let encoded = [0x22] + bytes(s) + [0x22]
            XCTAssertEqual(try JSONValue.parse(encoded), .string(s))
            // Written raw, not escaped.
            XCTAssertEqual(JSONValue.string(s).serialized(), encoded)
        }
        let key = try JSONValue.parse(#"{"ключ": "значение", "😀": 1}"#)
        XCTAssertEqual(key["ключ"], "значение")
        XCTAssertEqual(key["😀"], 1)
    }

    /// The hot path's string writer: plain text copied as it is, anything else escaped as
    /// `write` does.
    func testAppendStringCopiesPlainTextAndEscapesTheRest() {
        for text in ["3d1433dc-a1b2-4c0b-8a67-e44ac80832cd", "", "é中😀", "quote\"back\\slash", "tab\tnul\u{0}"] {
            var appended: [UInt8] = [0x5B]
            JSONValue.appendString(text, to: &appended)
            var written: [UInt8] = [0x5B]
            JSONValue.string(text).write(to: &written)
            XCTAssertEqual(appended, written, text.debugDescription)
            XCTAssertEqual(try JSONValue.parse(appended.dropFirst()), .string(text))
        }
        // A peer's bytes that are not UTF-8 still make valid JSON.
        var repaired: [UInt8] = []
        JSONValue.appendString([0x61, 0xFF, 0x62], to: &repaired)
        XCTAssertEqual(try JSONValue.parse(repaired), .string("a\u{FFFD}b"))
    }

    func testWriteEscapes() {
        func written(_ s: String) -> String { JSONValue.string(s).serializedString() }
        XCTAssertEqual(written("plain"), #""plain""#)
        XCTAssertEqual(written("\""), #""\"""#)
        XCTAssertEqual(written("\\"), #""\\""#)
        XCTAssertEqual(written("/"), #""/""#)
        XCTAssertEqual(written("\u{8}\u{C}\n\r\t"), #""\b\f\n\r\t""#)
        XCTAssertEqual(written("\u{0}"), #""\u0000""#)
        XCTAssertEqual(written("\u{1}\u{1F}\u{B}"), #""\u0001\u001f\u000b""#)
        XCTAssertEqual(written("\u{7F}"), "\"\u{7F}\"")
        XCTAssertEqual(written("é😀"), "\"é😀\"")
        XCTAssertEqual(JSONValue.object(["a\"b": "c\nd"]).serializedString(), #"{"a\"b":"c\nd"}"#)
        // Every control character round-trips.
        for c in 0..<0x20 {
            let s = "x" + String(Character(Unicode.Scalar(UInt8(c)))) + "y"
            XCTAssertEqual(try JSONValue.parse(written(s)), .string(s), "control \(c)")
        }
    }

    /// Special bytes at every position around the 8-byte fast-path boundaries.
    func testStringsAcrossWordBoundaries() throws {
        let specials: [String] = ["\"", "\\", "\n", "\u{1}", "é", "😀", "/"]
        for special in specials {
            for length in 0..<20 {
                for position in 0...length {
                    var chars = Array(repeating: Character("a"), count: length)
                    chars.insert(Character(special), at: position)
                    let s = String(chars)
                    let text = JSONValue.string(s).serialized()
                    XCTAssertEqual(try JSONValue.parse(text), .string(s))
                    XCTAssertEqual(JSONScanner.stringValue(text, in: 0..<text.count), s)
                }
            }
        }
        // An unescaped control character is found wherever it sits.
        for position in 0..<20 {
            var raw = [UInt8](repeating: 0x61, count: 20)
            raw[position] = 0x0A
            let error = parseError([0x22] + raw + [0x22])
            XCTAssertEqual(error?.offset, position + 1)
            XCTAssertTrue(error?.message.hasPrefix("unescaped control character") == true)
        }
    }

    // MARK: - Rejections

    func testRejections() {
        // (input, offset, start of message)
        let cases: [(String, Int, String)] = [
            ("", 0, "unexpected end of input"),
            ("   ", 3, "unexpected end of input"),
            ("NaN", 0, "unexpected character 'N'"),
            ("Infinity", 0, "unexpected character 'I'"),
            ("-Infinity", 1, "unexpected character 'I'"),
            ("[NaN]", 1, "unexpected character 'N'"),
            ("[1, nan]", 4, "invalid literal"),
            ("01", 0, "leading zeros"),
            ("-01", 0, "leading zeros"),
            ("[00]", 1, "leading zeros"),
            ("1.", 2, "unexpected end of input"),
            ("1.e5", 2, "unexpected character 'e'"),
            ("1e", 2, "unexpected end of input"),
            ("1e+", 3, "unexpected end of input"),
            ("1e+x", 3, "unexpected character 'x'"),
            (".5", 0, "unexpected character '.'"),
            ("+1", 0, "unexpected character '+'"),
            ("-", 1, "unexpected end of input"),
            ("- 1", 1, "unexpected byte 0x20"),
            ("0x10", 1, "unexpected trailing character 'x'"),
            ("1e999999", 0, "number out of range"),
            ("[1, -1e400]", 4, "number out of range"),
            ("1797693134862315807937289714053034150799341327710" + String(repeating: "0", count: 260), 0,
             "number out of range"),
            ("[1,]", 3, "unexpected character ']'"),
            ("[1,,2]", 3, "unexpected character ','"),
            ("[,1]", 1, "unexpected character ','"),
            (#"{"a":1,}"#, 7, "unexpected character '}'"),
            (#"{"a":1 "b":2}"#, 7, "unexpected character '\"'"),
            ("{a:1}", 1, "unexpected character 'a'"),
            ("{'a':1}", 1, "unexpected character '''"),
            (#"{"a" 1}"#, 5, "unexpected character '1'"),
            (#"{"a":}"#, 5, "unexpected character '}'"),
            (#"{"a"}"#, 4, "unexpected character '}'"),
            ("{1:2}", 1, "unexpected character '1'"),
            ("[1 2]", 3, "unexpected character '2'"),
            ("[1}", 2, "unexpected character '}'"),
            (#"{"a":1]"#, 6, "unexpected character ']'"),
            ("[", 1, "unexpected end of input"),
            ("{", 1, "unexpected end of input"),
            ("[1", 2, "unexpected end of input"),
            (#"{"a":1"#, 6, "unexpected end of input"),
            (#"{"a""#, 4, "unexpected end of input"),
            ("]", 0, "unexpected character ']'"),
            ("1 2", 2, "unexpected trailing character '2'"),
            ("[] []", 3, "unexpected trailing character '['"),
            (#""a""b""#, 3, "unexpected trailing character '\"'"),
            ("// c\n1", 0, "unexpected character '/'"),
            ("/* c */ 1", 0, "unexpected character '/'"),
            ("[1] // c", 4, "unexpected trailing character '/'"),
            ("[1, /* c */ 2]", 4, "unexpected character '/'"),
            ("tru", 0, "invalid literal"),
            ("True", 0, "unexpected character 'T'"),
            ("nul", 0, "invalid literal"),
            ("nulL", 0, "invalid literal"),
            ("[fals]", 1, "invalid literal"),
            ("truex", 4, "unexpected trailing character 'x'"),
            ("'a'", 0, "unexpected character '''"),
            ("\"abc", 4, "unterminated string"),
            ("\"abc\\", 5, "unterminated string"),
            ("\"a\u{1}\"", 2, "unescaped control character"),
            ("\"\t\"", 1, "unescaped control character"),
            ("\"a\nb\"", 2, "unescaped control character"),
            (#""\x""#, 1, "invalid escape sequence"),
            (#""\U0041""#, 1, "invalid escape sequence"),
            (#""\'""#, 1, "invalid escape sequence"),
            (#""ab\u12G4""#, 3, "invalid \\u escape"),
            (#""\u12""#, 1, "invalid \\u escape"),
            (#""\ud800""#, 1, "lone surrogate"),
            (#""\udc00""#, 1, "lone surrogate"),
            (#""\udfff\ud800""#, 1, "lone surrogate"),
            (#""\ud800\u0041""#, 1, "lone surrogate"),
            (#""\ud800\ud800""#, 1, "lone surrogate"),
            (#""ab\ud83dx""#, 3, "lone surrogate"),
            (#""\ud83d\n""#, 1, "lone surrogate"),
            (#""\ud83d\ude0""#, 1, "lone surrogate"),
            ("\u{FEFF}1", 0, "unexpected byte 0xEF"),
            ("\u{A0}1", 0, "unexpected byte 0xC2"),
            ("\u{B}1", 0, "unexpected byte 0x0B"),
            ("\u{C}1", 0, "unexpected byte 0x0C"),
            ("1\u{0}", 1, "unexpected trailing byte 0x00"),
        ]
        for (input, offset, message) in cases {
            guard let error = parseError(bytes(input)) else {
                XCTFail("accepted \(input.debugDescription)")
                continue
            }
            XCTAssertEqual(error.offset, offset, "offset for \(input.debugDescription): \(error)")
            XCTAssertTrue(error.message.hasPrefix(message), "message for \(input.debugDescription): \(error)")
            XCTAssertTrue(error.message.hasSuffix("at offset \(offset)"), "\(error)")
            XCTAssertEqual(error.description, error.message)
            // The scanner, being as strict, rejects the same text as an array element.
            if !input.allSatisfy({ $0 == " " }) {
                XCTAssertNotNil(scanError(bytes("[" + input + "]")), "scanner accepted [\(input.debugDescription)]")
            }
        }
    }

    func testRejectsInvalidUTF8() {
        let cases: [([UInt8], Int)] = [
            ([0x22, 0xFF, 0x22], 1),                         // never valid
            ([0x22, 0x80, 0x22], 1),                         // lone continuation byte
            ([0x22, 0x61, 0xC0, 0xAF, 0x22], 2),             // overlong '/'
            ([0x22, 0xC1, 0xBF, 0x22], 1),                   // overlong
            ([0x22, 0xE0, 0x80, 0xAF, 0x22], 1),             // overlong 3-byte
            ([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], 1),       // overlong 4-byte
            ([0x22, 0xED, 0xA0, 0x80, 0x22], 1),             // UTF-8 encoded surrogate U+D800
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1),       // above U+10FFFF
            ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], 1),
            ([0x22, 0xE2, 0x82, 0x22], 1),                   // truncated sequence before the quote
            ([0x22, 0xE2, 0x82], 1),                         // truncated at end of input
            ([0x22, 0xC3, 0x41, 0x22], 1),                   // bad continuation
            ([0x22] + Array(repeating: 0x61, count: 13) + [0xFE, 0x22], 14),
            ([0x5B, 0x22, 0x61, 0x22, 0x2C, 0x22, 0xC3, 0x28, 0x22, 0x5D], 6),
        ]
        for (input, offset) in cases {
            let error = parseError(input)
            XCTAssertEqual(error?.offset, offset, "\(input)")
            XCTAssertEqual(error?.message, "invalid UTF-8 at offset \(offset)")
            XCTAssertNotNil(scanError([0x5B] + input + [0x5D]), "\(input)")
        }
        // Valid extremes of each sequence length are accepted.
        let valid: [[UInt8]] = [[0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],
                                [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80],
                                [0xF4, 0x8F, 0xBF, 0xBF]]
        for sequence in valid {
            let value = try? JSONValue.parse([0x22] + sequence + [0x22])
            XCTAssertEqual(value?.stringValue.map { Array($0.utf8) }, sequence)
        }
    }

    func testTruncatedInputsAreRejected() throws {
        let document = bytes(#"{"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00é"], "b": {"c": {}}}"#)
        XCTAssertNotNil(try? JSONValue.parse(document))
        for length in 0..<document.count {
            let prefix = Array(document[..<length])
            let error = parseError(prefix)
            XCTAssertNotNil(error, "prefix of length \(length) accepted")
            XCTAssertLessThanOrEqual(error?.offset ?? .max, length)
        }
    }

    func testWhitespaceIsStrict() throws {
        XCTAssertEqual(try JSONValue.parse(" \t\n\r[ \t\n\r1 \t\n\r, \t\n\r{ \"a\" \t\n\r: 2 } ] \r\n"), [1, ["a": 2]])
        XCTAssertNotNil(parseError(bytes("[1,\u{0B}2]")))
        XCTAssertNotNil(parseError(bytes("[1,\u{0C}2]")))
        XCTAssertNotNil(parseError(bytes("[1,\u{A0}2]")))
        XCTAssertNotNil(parseError(bytes("[1,\u{2028}2]")))
    }

    // MARK: - Depth

    func testMaxDepth() throws {
        XCTAssertEqual(JSONValue.maxDepth, 512)
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        var v = try JSONValue.parse(ok)
        var depth = 0
        while case .array(let elements) = v {
            depth += 1
            guard let first = elements.first else { break }
            v = first
        }
        XCTAssertEqual(depth, 512)
        XCTAssertEqual(try JSONValue.parse(ok).serializedString(), ok)

        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        let error = parseError(bytes(tooDeep))
        XCTAssertEqual(error?.offset, 512)
        XCTAssertEqual(error?.message, "nesting deeper than 512 at offset 512")

        // Objects count the same way.
        let objects = String(repeating: #"{"a":"#, count: 512) + "1" + String(repeating: "}", count: 512)
        XCTAssertNotNil(try? JSONValue.parse(objects))
        let deepObjects = String(repeating: #"{"a":"#, count: 513) + "1" + String(repeating: "}", count: 513)
        XCTAssertEqual(parseError(bytes(deepObjects))?.offset, 512 * 5)

        // The scanner agrees (its top-level array is level 1).
        XCTAssertEqual(try JSONScanner.topLevelArrayElements(bytes(ok)), [1..<1023])
        XCTAssertEqual(scanError(bytes(tooDeep))?.offset, 512)
        XCTAssertEqual(scanError(bytes("[" + deepObjects.dropFirst(5).dropLast() + "]"))?.offset, 1 + 511 * 5)
    }

    func testHostileNestingNeverOverflows() {
        let hostile: [String] = [
            String(repeating: "[", count: 100_000),
            String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
            String(repeating: #"{"a":"#, count: 100_000),
            String(repeating: "[{\"a\":", count: 50_000),
            String(repeating: "[1,", count: 100_000),
        ]
        for text in hostile {
            let error = parseError(bytes(text))
            XCTAssertNotNil(error)
            XCTAssertTrue(error?.message.hasPrefix("nesting deeper than 512") == true, "\(error as Any)")
            XCTAssertNotNil(scanError(bytes(text)))
        }
    }

    // MARK: - Scanner

    func testScannerExample() throws {
        let text = bytes(#"["cs", ["u1", "op", {"a": [1,2]}]]"#)
        let ranges = try JSONScanner.topLevelArrayElements(text)
        XCTAssertEqual(ranges.count, 2)
        XCTAssertEqual(String(decoding: text[ranges[0]], as: UTF8.self), #""cs""#)
        XCTAssertEqual(String(decoding: text[ranges[1]], as: UTF8.self), #"["u1", "op", {"a": [1,2]}]"#)
        XCTAssertEqual(JSONScanner.stringValue(text, in: ranges[0]), "cs")
        XCTAssertNil(JSONScanner.stringValue(text, in: ranges[1]))

        let inner = Array(text[ranges[1]])
        let innerRanges = try JSONScanner.topLevelArrayElements(inner)
        XCTAssertEqual(innerRanges.map { String(decoding: inner[$0], as: UTF8.self) },
                       [#""u1""#, #""op""#, #"{"a": [1,2]}"#])
        XCTAssertEqual(JSONScanner.stringValue(inner, in: innerRanges[1]), "op")
        XCTAssertEqual(try JSONValue.parse(inner[innerRanges[2]]), ["a": [1, 2]])
    }

    func testScannerRangesExcludeWhitespace() throws {
        let text = bytes(" \n[ 1 ,\t\"two\"\r\n, [ ] , {} ,null,  -0.5e1  ] \n")
        let ranges = try JSONScanner.topLevelArrayElements(text)
        XCTAssertEqual(ranges.map { String(decoding: text[$0], as: UTF8.self) },
                       ["1", "\"two\"", "[ ]", "{}", "null", "-0.5e1"])
        XCTAssertEqual(try JSONScanner.topLevelArrayElements(bytes("[]")), [])
        XCTAssertEqual(try JSONScanner.topLevelArrayElements(bytes(" [ \n ] ")), [])
    }

    func testScannerRawBufferOverload() throws {
        let text = bytes(#"[1,"a"]"#)
        let ranges = try text.withUnsafeBytes { raw throws(JSONError) in try JSONScanner.topLevelArrayElements(raw) }
        XCTAssertEqual(ranges, [1..<2, 3..<6])
        let empty = try? [UInt8]().withUnsafeBytes { raw throws(JSONError) in try JSONScanner.topLevelArrayElements(raw) }
        XCTAssertNil(empty)
    }

    func testScannerRejections() {
        let cases: [(String, Int)] = [
            ("", 0), ("1", 0), (#""a""#, 0), ("{}", 0), ("null", 0),
            ("[", 1), ("[1", 2), ("[1,]", 3), ("[1 2]", 3), ("[1]]", 3), ("[1] x", 4),
            ("[01]", 1), ("[1e999]", 1), ("[\"\\ud800\"]", 2), ("[\"a\u{1}\"]", 3), ("[{\"a\" 1}]", 6),
            ("[{\"a\":1,}]", 8), ("[[1,]]", 4), ("[{]", 2), ("[[}]", 2), ("[tru]", 1), ("[NaN]", 1),
            ("[1.]", 3), ("[\"abc]", 6), ("[{\"a\":[1,2}]", 10),
        ]
        for (input, offset) in cases {
            let error = scanError(bytes(input))
            XCTAssertEqual(error?.offset, offset, "\(input.debugDescription): \(error as Any)")
        }
        XCTAssertEqual(scanError(bytes("{}"))?.message, "expected a JSON array, found character '{' at offset 0")
    }

    func testScannerStringValue() throws {
        // A lone surrogate anywhere makes the whole text invalid.
        XCTAssertNotNil(scanError(bytes(#"["plain", "bad\ud800"]"#)))

        let text = bytes(#"["plain", "esc\"aped\n\u00e9\ud83d\ude00", 12, "", null, " x " ]"#)
        let ranges = try JSONScanner.topLevelArrayElements(text)
        XCTAssertEqual(ranges.map { JSONScanner.stringValue(text, in: $0) },
                       ["plain", "esc\"aped\né😀", nil, "", nil, " x "])
        XCTAssertNil(JSONScanner.stringValue(text, in: 0..<text.count))          // the whole array
        XCTAssertNil(JSONScanner.stringValue(text, in: 0..<(text.count + 1)))    // out of bounds
        XCTAssertNil(JSONScanner.stringValue(text, in: -1..<3))
        XCTAssertNil(JSONScanner.stringValue(text, in: ranges[0].lowerBound..<(ranges[0].upperBound - 1)))
        // Surrounding whitespace is allowed.
        XCTAssertEqual(JSONScanner.stringValue(text, in: (ranges[1].lowerBound - 1)..<(ranges[1].upperBound + 0)),
                       "esc\"aped\né😀")
        XCTAssertEqual(JSONScanner.stringValue(text, in: (ranges[5].lowerBound - 1)..<(ranges[5].upperBound + 1)), " x ")
        XCTAssertNil(JSONScanner.stringValue(text, in: (ranges[0].lowerBound - 1)..<ranges[0].upperBound))  // '[' before
        XCTAssertNil(JSONScanner.stringValue(bytes(#""a" "b""#), in: 0..<7))
        XCTAssertNil(JSONScanner.stringValue(bytes(#""bad\ud800""#), in: 0..<11))
        XCTAssertNil(JSONScanner.stringValue([0x22, 0xFF, 0x22], in: 0..<3))
        XCTAssertEqual(JSONScanner.stringValue([0x22, 0xC3, 0xA9, 0x22], in: 0..<4), "é")
    }

    // MARK: - Fuzz-style robustness

    /// Checks the parser and the scanner agree, and that anything accepted round-trips.
    /// Returns whether the input parsed.
    @discardableResult
    private func checkRobust(_ input: [UInt8]) -> Bool {
        let parsed: JSONValue?
        do {
            parsed = try JSONValue.parse(input)
        } catch {
            XCTAssertTrue(error.offset >= 0 && error.offset <= input.count, "offset \(error.offset) of \(input)")
            parsed = nil
        }
        let scanned = try? JSONScanner.topLevelArrayElements(input)
        guard let value = parsed else {
            XCTAssertNil(scanned, "scanner accepted what the parser rejected: \(input)")
            return false
        }
        let written = value.serialized()
        XCTAssertEqual(try? JSONValue.parse(written), value, "round trip of \(input)")
        if case .array(let elements) = value {
            XCTAssertEqual(scanned?.count, elements.count, "scanner count for \(input)")
            for (range, element) in zip(scanned ?? [], elements) {
                XCTAssertEqual(try? JSONValue.parse(input[range]), element)
                if case .string(let s) = element {
                    XCTAssertEqual(JSONScanner.stringValue(input, in: range), s)
                }
            }
        } else {
            XCTAssertNil(scanned, "scanner accepted a non-array: \(input)")
        }
        return true
    }

    func testFuzzRandomBytes() {
        var rng = SplitMix64(seed: 0x5EED)
        let alphabet = bytes(#"[]{}:,"\ 0123456789-+.eEtrufalsn/xu"#) + [0x00, 0x0A, 0x09, 0xC3, 0xA9, 0xF0, 0x9F, 0xFF]
        var parsedCount = 0
        for i in 0..<6000 {
            let length = rng.below(48)
            var input: [UInt8] = []
            for _ in 0..<length {
                input.append(i % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[rng.below(alphabet.count)])
            }
            if checkRobust(input) { parsedCount += 1 }
        }
        // Some of the short alphabet strings must be valid JSON, or this test exercises nothing.
        XCTAssertGreaterThan(parsedCount, 20)
    }

    func testFuzzMutatedDocuments() {
        let corpus: [[UInt8]] = [
            #"["cs", ["u1", "op", {"a": [1,2]}]]"#,
            #"{"id": 17, "method": "find", "params": ["core:class:Space", {"_id": "x\u00e9\n"}], "ok": true}"#,
            #"[0, -0, 1e3, 1.5, 1e-7, 9007199254740992, 12345678901234567890, -2.5E+10]"#,
            #"{"s": "\ud83d\ude00 é 😀 \"q\" \\ \/", "n": null, "f": false, "e": {}, "a": [[], [[]]]}"#,
            #"  [ { "k" : [ "v" , 1 , { } ] } , "tail" ]  "#,
            #""just a string with \t escapes and ünïcödé""#,
            "-123.456e-7",
        ].map { bytes($0) }
        let interesting = bytes(#"[]{}:,"\ 0-.eE"#) + [0x00, 0x80, 0xC3, 0xED, 0xF4, 0xFF, 0x7F]
        var rng = SplitMix64(seed: 1234)
        for document in corpus { XCTAssertTrue(checkRobust(document), "corpus document rejected") }
        var parsedCount = 0
        for _ in 0..<6000 {
            var input = corpus[rng.below(corpus.count)]
            for _ in 0...rng.below(4) {
                let at = input.isEmpty ? 0 : rng.below(input.count)
                switch rng.below(6) {
                case 0 where !input.isEmpty: input[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: input.insert(interesting[rng.below(interesting.count)], at: at)
                case 2 where !input.isEmpty: input.remove(at: at)
                case 3: input.removeSubrange(at..<input.count)
                case 4 where !input.isEmpty:
                    let end = min(input.count, at + 1 + rng.below(12))
                    input.insert(contentsOf: input[at..<end], at: rng.below(input.count))
                default: input[at...].reverse()
                }
            }
            if checkRobust(input) { parsedCount += 1 }
        }
        XCTAssertGreaterThan(parsedCount, 100)
    }

    /// Random valid JSON text (grammar-guided), with random whitespace, escapes and number forms.
    private func randomDocument(_ rng: inout SplitMix64, depth: Int = 0) -> String {
        let spaces = ["", "", " ", "\n", "\t", "\r\n  "]
        func ws(_ rng: inout SplitMix64) -> String { spaces[rng.below(spaces.count)] }
        let pieces = ["a", "Z", " ", "é", "😀", "日", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\ud83d\\ude00",
                      "\\u0000", "\\t", "/", "\u{7F}", "0123456789"]
        let numbers = ["0", "-0", "1", "-17", "3.25", "1e3", "2E-5", "-0.0001", "6.02e+23", "9007199254740993",
                       "123456789012345678901234", "1e-320", "0.1", "1.7976931348623157e308"]
        let choice = depth >= 5 ? rng.below(4) : rng.below(6)
        switch choice {
        case 0: return ["null", "true", "false"][rng.below(3)]
        case 1: return numbers[rng.below(numbers.count)]
        case 2, 3:
            var out = "\""
            for _ in 0..<rng.below(6) { out += pieces[rng.below(pieces.count)] }
            return out + "\""
        case 4:
            let items = (0..<rng.below(5)).map { _ in ws(&rng) + randomDocument(&rng, depth: depth + 1) + ws(&rng) }
            return "[" + (items.isEmpty ? ws(&rng) : items.joined(separator: ",")) + "]"
        default:
            let items = (0..<rng.below(5)).map { _ in
                ws(&rng) + "\"k\(rng.below(4))\"" + ws(&rng) + ":" + ws(&rng) + randomDocument(&rng, depth: depth + 1) + ws(&rng)
            }
            return "{" + (items.isEmpty ? ws(&rng) : items.joined(separator: ",")) + "}"
        }
    }

    func testFuzzGeneratedDocuments() throws {
        var rng = SplitMix64(seed: 99)
        var arrays = 0
        var mutatedParsed = 0
        for _ in 0..<3000 {
            let text = bytes(" " + randomDocument(&rng) + "\n")
            XCTAssertTrue(checkRobust(text), "generated document rejected: \(String(decoding: text, as: UTF8.self))")
            if text.contains(0x5B) { arrays += 1 }
            // One random byte flip, insertion or deletion.
            var mutated = text
            let at = rng.below(mutated.count)
            switch rng.below(3) {
            case 0: mutated[at] = UInt8(truncatingIfNeeded: rng.next())
            case 1: mutated.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            default: mutated.remove(at: at)
            }
            if checkRobust(mutated) { mutatedParsed += 1 }
        }
        XCTAssertGreaterThan(arrays, 500)
        XCTAssertGreaterThan(mutatedParsed, 100)
    }
}

final class JSONScannerFirstElementTests: XCTestCase {
    func testFirstArrayElementScansOnlyTheFirstElement() {
        let text = Array(#"["cs", ["u1", "op", {"a": [1, 2]}]]"#.utf8)
        let elements = try! JSONScanner.topLevelArrayElements(text)
        let first = JSONScanner.firstArrayElement(text, in: elements[1])
        XCTAssertEqual(first.map { String(decoding: text[$0], as: UTF8.self) }, #""u1""#)
        XCTAssertEqual(first.flatMap { JSONScanner.stringValue(text, in: $0) }, "u1")
        // Whatever follows the first element is not looked at.
        let broken = Array(#"[ "target" , this is not read"#.utf8)
        XCTAssertEqual(JSONScanner.firstArrayElement(broken, in: 0..<broken.count), 2..<10)
    }

    func testFirstArrayElementRefusesWhatIsNotAnArrayWithAnElement() {
        for text in ["{}", "[]", "[ ]", "\"x\"", "", "[", "[\"unterminated"] {
            let bytes = Array(text.utf8)
            XCTAssertNil(JSONScanner.firstArrayElement(bytes, in: 0..<bytes.count), text)
        }
        let bytes = Array("[1]".utf8)
        XCTAssertNil(JSONScanner.firstArrayElement(bytes, in: 0..<10), "a range past the end")
    }
}
