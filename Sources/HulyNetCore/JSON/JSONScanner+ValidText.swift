#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Reading text that was validated whole where it entered (an RPC server validates every request
// it takes): only its structure is read (where strings end, brackets, commas), not whether it is
// valid, which a second validation would check again at the cost of a pass over every byte of
// every string (a 64 KiB body costs a validating pass several times what this costs).

extension JSONScanner {
    /// The ranges of the elements of the JSON array at `range` of `bytes` (whitespace around
    /// each excluded), for text **validated whole already**: nothing here checks it again.
    /// Nil when `range` is out of bounds or does not hold an array. On text that is not valid
    /// JSON the ranges are within `range` but mean nothing; it never traps.
    public static func elementsOfValidArray(_ bytes: [UInt8], in range: Range<Int>) -> [Range<Int>]? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return bytes.withUnsafeBufferPointer { buf -> [Range<Int>]? in
            var skim = ValidTextSkim(buf, start: range.lowerBound, end: range.upperBound)
            skim.skipWhitespace()
            guard skim.peek == JSONByte.openBracket else { return nil }
            skim.pos &+= 1
            skim.skipWhitespace()
            var ranges: [Range<Int>] = []
            if skim.peek == JSONByte.closeBracket { return ranges }
            ranges.reserveCapacity(4)  // [method, params] / [target, operation, data]
            while true {
                let start = skim.pos
                skim.skipValue()
                ranges.append(start..<skim.pos)
                skim.skipWhitespace()
                guard let next = skim.peek else { return nil }
                skim.pos &+= 1
                if next == JSONByte.closeBracket { return ranges }
                guard next == JSONByte.comma else { return nil }
                skim.skipWhitespace()
            }
        }
    }
}

/// A cursor over valid JSON text that finds where values end without validating them.
/// Bounds are checked on every read: on text that is not valid it stops at `end` at worst.
struct ValidTextSkim {
    let buf: UnsafeBufferPointer<UInt8>
    var pos: Int
    let end: Int

    init(_ buf: UnsafeBufferPointer<UInt8>, start: Int, end: Int) {
        self.buf = buf
        pos = start
        self.end = end
    }

    var peek: UInt8? { pos < end ? buf[pos] : nil }

    mutating func skipWhitespace() {
        while pos < end, JSONByte.isWhitespace(buf[pos]) { pos &+= 1 }
    }

    /// Moves past the value at `pos`: a string, a container with all it holds, or a scalar
    /// (which ends at the first delimiter).
    mutating func skipValue() {
        var depth = 0
        while pos < end {
            switch buf[pos] {
            case JSONByte.quote:
                skipString()
                if depth == 0 { return }
            case JSONByte.openBracket, JSONByte.openBrace:
                depth &+= 1
                pos &+= 1
            case JSONByte.closeBracket, JSONByte.closeBrace:
                if depth == 0 { return }  // the enclosing array's end
                depth &-= 1
                pos &+= 1
                if depth == 0 { return }
            case JSONByte.comma, JSONByte.colon, JSONByte.space, JSONByte.tab, JSONByte.lineFeed, JSONByte.carriageReturn:
                if depth == 0 { return }
                pos &+= 1
            default:
                pos &+= 1
            }
        }
    }

    /// Moves past the string whose opening quote is at `pos`: to the first quote after it that
    /// an odd run of backslashes does not escape (found with `memchr`, many bytes a step).
    mutating func skipString() {
        let contentStart = pos &+ 1
        pos = contentStart
        guard let base = buf.baseAddress else { pos = end; return }
        while pos < end {
            guard let found = memchr(base + pos, Int32(JSONByte.quote), end &- pos) else {
                pos = end
                return
            }
            let quote = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            var backslashes = 0
            while quote &- backslashes &- 1 >= contentStart, buf[quote &- backslashes &- 1] == JSONByte.backslash {
                backslashes &+= 1
            }
            pos = quote &+ 1
            if backslashes & 1 == 0 { return }
        }
    }
}
