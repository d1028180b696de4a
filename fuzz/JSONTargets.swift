// Fuzz targets for the JSON code: the tree parser with its writer, and the validating scanner
// checked against the parser (both share JSONLexer, and must accept exactly the same texts).

/// json-parse: every entry point of the parser agrees, and whatever parses survives
/// write -> parse unchanged.
func fuzzJSONParse(_ data: UnsafeBufferPointer<UInt8>) {
    let bytes = Array(data)
    let result = Result { () throws(JSONError) in try JSONValue.parse(bytes) }
    if case .failure(let error) = result {
        check(error.offset >= 0 && error.offset <= bytes.count, "error offset \(error.offset) outside the input")
    }
    // A slice that does not start at index 0, the raw buffer, and text all give the same answer.
    let padded = [UInt8(ascii: "x")] + bytes + [UInt8(ascii: "x")]
    let fromSlice = Result { () throws(JSONError) in try JSONValue.parse(padded[1..<(padded.count - 1)]) }
    check(fromSlice == result, "a slice parses differently: \(fromSlice) vs \(result)")
    let fromRaw = Result { () throws(JSONError) in try JSONValue.parse(UnsafeRawBufferPointer(data)) }
    check(fromRaw == result, "the raw buffer parses differently: \(fromRaw) vs \(result)")
    // A collection without contiguous storage takes the copying path.
    let fromLazy = Result { () throws(JSONError) in try JSONValue.parse(bytes.lazy.map { $0 }) }
    check(fromLazy == result, "a non-contiguous collection parses differently: \(fromLazy) vs \(result)")

    guard case .success(let value) = result else { return }
    // Valid JSON is valid UTF-8, so the text entry point sees the same bytes.
    let text = String(decoding: bytes, as: UTF8.self)
    check(Array(text.utf8) == bytes, "accepted text that is not valid UTF-8")
    check((try? JSONValue.parse(text)) == value, "text parses differently")

    let written = value.serialized()
    let reparsed = Result { () throws(JSONError) in try JSONValue.parse(written) }
    check(reparsed == .success(value), "write -> parse changed the value: \(value) -> \(String(decoding: written, as: UTF8.self)) -> \(reparsed)")
    check(value.serializedString() == String(decoding: written, as: UTF8.self), "serialized() and serializedString() differ")
    if case .number(let d) = value { checkNumber(bytes[...], d) }
}

/// json-scan: the scanner accepts exactly the arrays the parser accepts, its element ranges
/// hold the parser's elements, and `firstArrayElement` / `stringValue` agree with the parser on
/// whatever range they are given.
func fuzzJSONScan(_ data: UnsafeBufferPointer<UInt8>) {
    let bytes = Array(data)
    let parsed = try? JSONValue.parse(bytes)
    let ranges = try? JSONScanner.topLevelArrayElements(bytes)
    let rawRanges = try? JSONScanner.topLevelArrayElements(UnsafeRawBufferPointer(data))
    check(ranges == rawRanges, "raw buffer scan differs: \(String(describing: ranges)) vs \(String(describing: rawRanges))")
    let elements = parsed?.arrayValue
    check((ranges != nil) == (elements != nil),
          "scanner \(ranges != nil ? "accepts" : "rejects") what the parser \(parsed != nil ? "parses as \(parsed!)" : "rejects")")

    if let ranges, let elements {
        check(ranges.count == elements.count, "\(ranges.count) ranges for \(elements.count) elements")
        for (range, element) in zip(ranges, elements) {
            check(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range \(range) out of bounds")
            check((try? JSONValue.parse(bytes[range])) == element, "element at \(range) is not \(element)")
            check(JSONScanner.stringValue(bytes, in: range) == element.stringValue, "stringValue differs at \(range)")
            if case .number(let d) = element { checkNumber(bytes[range], d) }
        }
        check(JSONScanner.firstArrayElement(bytes, in: 0..<bytes.count) == ranges.first, "firstArrayElement differs")
    }

    // JSONText and arrayElements agree with the parser; a request split and a forwarded request
    // read in place accept only what parses, with the parser's parts.
    check(((try? JSONText(validating: bytes)) != nil) == (parsed != nil), "JSONText and the parser disagree")
    check(JSONScanner.arrayElements(bytes, in: 0..<bytes.count) == ranges, "arrayElements differs from the scan")
    // Reading validated text finds the same elements; on any other text it stays in bounds.
    let skimmed = JSONScanner.elementsOfValidArray(bytes, in: 0..<bytes.count)
    if let ranges { check(skimmed == ranges, "elementsOfValidArray differs from the scan on valid text") }
    for range in skimmed ?? [] { check(range.lowerBound >= 0 && range.upperBound <= bytes.count, "skimmed range \(range) out of bounds") }
    if let (method, params) = try? JSONScanner.methodAndParams(bytes) {
        check(params.upperBound <= bytes.count, "params \(params) out of bounds")
        if let forwarded = ForwardedRequest(in: bytes, at: params) {
            let value = try? JSONValue.parse(bytes[params])
            check(value?[0]?.stringValue == forwarded.agentId, "forwarded agent differs from the parser")
            check(value?[1]?[0]?.stringValue == forwarded.target, "forwarded target differs from the parser")
            check(value?[1]?[1]?.stringValue == forwarded.operation, "forwarded operation differs from the parser")
            check((try? forwarded.data.value()) == (value?[1]?[2] ?? .null), "forwarded data differs from the parser")
        }
        if let parsed, parsed.arrayValue?.count == 2 { check(parsed[0]?.stringValue == method, "method differs") }
    }

    // Whatever is inside brackets: the scanner's skipper and the tree parser agree on every value.
    let wrapped = [UInt8(ascii: "[")] + bytes + [UInt8(ascii: "]")]
    let wrappedValid = (try? JSONScanner.topLevelArrayElements(wrapped)) != nil
    check(wrappedValid == ((try? JSONValue.parse(wrapped)) != nil), "scanner and parser disagree on [input]")

    // Arbitrary ranges, chosen by the input's first bytes (out of bounds ones included).
    var chosen = [0..<bytes.count]
    if bytes.count >= 2 {
        let a = Int(bytes[0]) % (bytes.count + 2)
        let b = Int(bytes[1]) % (bytes.count + 2)
        chosen.append(min(a, b)..<max(a, b))
    }
    for range in chosen {
        let inBounds = range.upperBound <= bytes.count
        let slice = inBounds ? try? JSONValue.parse(bytes[range]) : nil
        check(JSONScanner.stringValue(bytes, in: range) == slice?.stringValue, "stringValue(\(range)) differs from the parser")
        if let first = JSONScanner.firstArrayElement(bytes, in: range) {
            check(inBounds && range.contains(first.lowerBound) && first.upperBound <= range.upperBound,
                  "firstArrayElement \(first) outside \(range)")
            check((try? JSONValue.parse(bytes[first])) != nil, "firstArrayElement \(first) of \(range) is not a value")
        }
    }
}

/// The parser's Double for a number's text equals the standard library's correctly rounded one
/// (the parser takes a fast path for short mantissas).
func checkNumber(_ text: ArraySlice<UInt8>, _ value: Double) {
    let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
    let trimmed = text.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
    let string = String(decoding: trimmed, as: UTF8.self)
    guard let expected = Double(string) else {
        check(false, "Double(\"\(string)\") is nil but the parser read \(value)")
        return
    }
    check(expected.bitPattern == value.bitPattern, "\(string) parsed as \(value), expected \(expected)")
}
