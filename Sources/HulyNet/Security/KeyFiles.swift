#if canImport(Glibc)
import Glibc
#endif
import HulyNetZMQ

/// Key files, as `hulynet keygen NAME` writes them: `NAME.key` holds the secret key (Z85, one
/// line, readable by its owner only) and `NAME.pub` the public key and the name
/// (`Z85-PUBLIC-KEY NAME`), a line ready to append to an allow list.
public enum KeyFiles {
    /// Writes `NAME.key` and `NAME.pub` in `directory` with a fresh key pair; refuses to
    /// overwrite either. Returns the pair.
    @discardableResult
    public static func generate(name: String, directory: String = ".") throws(NetworkError) -> CurveKeyPair {
        guard !name.isEmpty, name.utf8.count <= 200, !name.contains("/"), !name.contains(where: { $0.isWhitespace }) else {
            throw NetworkError.invalid("key name must be 1 to 200 characters without '/' or spaces")
        }
        let keys: CurveKeyPair
        do { keys = try CurveKeyPair.generate() } catch { throw NetworkError.invalid("cannot make a key pair: \(error)") }
        let base = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        try write(base + ".key", keys.secretKey + "\n", mode: 0o600)
        try write(base + ".pub", "\(keys.publicKey) \(name)\n", mode: 0o644)
        return keys
    }

    /// The key pair of a secret key file (`NAME.key`).
    public static func readSecret(_ path: String) throws(NetworkError) -> CurveKeyPair {
        let word = try firstWord(path)
        do { return try CurveKeyPair(secretKey: word) } catch {
            throw NetworkError.invalid("\(path): \(error.description)")
        }
    }

    /// The public key of a public key file (`NAME.pub`; its first word).
    public static func readPublic(_ path: String) throws(NetworkError) -> String {
        let word = try firstWord(path)
        guard Curve.isKey(word) else { throw NetworkError.invalid("\(path): not a Z85 CURVE public key") }
        return word
    }

    private static func firstWord(_ path: String) throws(NetworkError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetworkError.invalid("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard count > 0 else { throw NetworkError.invalid("\(path) is empty") }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        guard let word = text.split(whereSeparator: { $0.isWhitespace }).first else { throw NetworkError.invalid("\(path) is empty") }
        return String(word)
    }

    private static func write(_ path: String, _ text: String, mode: mode_t) throws(NetworkError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw NetworkError.invalid("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress!, $0.count) }) == bytes.count else {
            throw NetworkError.invalid("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
