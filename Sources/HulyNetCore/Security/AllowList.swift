/// The client keys a secured coordinator admits, read from a text file: one key a line,
/// `Z85-PUBLIC-KEY NAME [RULE...]` (rules: `AccessPolicy`), a word beginning with `#` starts a comment (Z85 keys may hold `#`
/// inside them), blank lines are skipped. (The `.pub` file that
/// `hulynet keygen NAME` writes is such a line: append it to admit the key.)
///
/// Pure: the shell reads the file and hands its text here; a line that is not a key and a name
/// is reported with its number and left out, so one bad line does not lock everyone out.
public struct AllowList: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let publicKey: String
        public let name: String
        public let policy: AccessPolicy
    }

    /// By public key (Z85).
    public private(set) var entries: [String: Entry] = [:]
    /// What was wrong with lines left out, "line N: why".
    public private(set) var problems: [String] = []

    public init() {}

    /// `isKey` says whether a text is a Z85 CURVE key (libzmq decides it in the shell).
    public init(parsing text: String, isKey: (String) -> Bool) {
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var words = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if let comment = words.firstIndex(where: { $0.hasPrefix("#") }) { words = Array(words[..<comment]) }
            guard !words.isEmpty else { continue }
            guard words.count >= 2 else {
                problems.append("line \(number): expected `KEY NAME [RULE...]`, got one word")
                continue
            }
            let key = String(words[0]), name = String(words[1])
            guard isKey(key) else {
                problems.append("line \(number): not a Z85 CURVE public key")
                continue
            }
            guard name.utf8.count <= 256, !name.contains(where: { $0.isNewline || $0 == "\0" }) else {
                problems.append("line \(number): the name is longer than 256 bytes")
                continue
            }
            if let earlier = entries[key] {
                problems.append("line \(number): the key of \(earlier.name) again (the first line counts)")
                continue
            }
            let policy: AccessPolicy
            do { policy = try AccessPolicy(name: name, rules: Array(words.dropFirst(2))) } catch {
                problems.append("line \(number): \(error.description)")
                continue
            }
            entries[key] = Entry(publicKey: key, name: name, policy: policy)
        }
    }

    public func entry(for publicKey: String) -> Entry? { entries[publicKey] }
    public var count: Int { entries.count }
}
