#if canImport(Glibc)
import Glibc
#endif
import HulyNetCore
import HulyNetSync
import HulyNetZMQ

/// Why an etcd call failed.
public struct EtcdError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The few etcd v3 calls leader election needs, through etcd's JSON gateway (`POST /v3/...`,
/// served on the client port by every etcd since 3.3), on blocking sockets with a deadline per
/// call. Small on purpose: no gRPC stack in the library for five calls a second.
///
/// One call at a time, from one thread. A failed call moves to the next endpoint for the next
/// call; the caller decides whether to retry.
final class EtcdClient {
    struct Endpoint: Equatable {
        let host: String
        let port: Int
        var text: String { "\(host):\(port)" }
    }

    let endpoints: [Endpoint]
    let timeoutMs: Int
    private var current = 0
    /// The largest answer read: etcd's answers to these calls are a few hundred bytes.
    private static let maxAnswerBytes = 1 << 20

    /// `urls`: `http://host:port` or `host:port` each.
    init(urls: [String], timeoutMs: Int) throws(NetworkError) {
        guard !urls.isEmpty else { throw NetworkError.invalid("no etcd endpoint given") }
        var endpoints: [Endpoint] = []
        for url in urls {
            var rest = Substring(url.trimmingSpaces)
            if rest.hasPrefix("https://") {
                throw NetworkError.invalid("etcd endpoint \(url): https is not supported; use http on a trusted network")
            }
            if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
            while rest.hasSuffix("/") { rest = rest.dropLast() }
            let (host, port) = try parseAddress(String(rest), defaultPort: 2379)
            guard port > 0 else { throw NetworkError.invalid("etcd endpoint \(url): port 0") }
            endpoints.append(Endpoint(host: host, port: port))
        }
        self.endpoints = endpoints
        self.timeoutMs = timeoutMs
    }

    var currentEndpoint: String { endpoints[current].text }

    // MARK: - Calls

    func grantLease(ttlSeconds: Int) throws(EtcdError) -> (id: Int64, ttlSeconds: Int) {
        let answer = try post("/v3/lease/grant", .object(["TTL": .string(String(ttlSeconds))]))
        guard let id = Self.int64(answer.member("ID")), id != 0, let ttl = Self.int64(answer.member("TTL")), ttl > 0 else {
            throw EtcdError("lease grant: unexpected answer \(String(decoding: answer.serialized().prefix(200), as: UTF8.self))")
        }
        return (id, Int(ttl))
    }

    /// The lease's TTL left, or nil when etcd no longer knows it.
    func keepAlive(lease: Int64) throws(EtcdError) -> Int? {
        let answer = try post("/v3/lease/keepalive", .object(["ID": .string(String(lease))]))
        let result = answer.member("result") ?? answer
        guard let ttl = Self.int64(result.member("TTL")), ttl > 0 else { return nil }
        return Int(ttl)
    }

    func revoke(lease: Int64) throws(EtcdError) {
        _ = try post("/v3/lease/revoke", .object(["ID": .string(String(lease))]))
    }

    /// Puts `key` = `value` on `lease` unless the key exists; returns whether it did, and the
    /// holder either way.
    func campaign(key: String, value: String, lease: Int64) throws(EtcdError) -> (won: Bool, holder: ElectionMachine.Holder?) {
        let encodedKey = JSONValue.string(Base64.encode(Array(key.utf8)))
        let answer = try post("/v3/kv/txn", .object([
            "compare": .array([.object(["key": encodedKey, "target": "CREATE", "result": "EQUAL",
                                        "create_revision": "0"])]),
            "success": .array([.object(["request_put": .object([
                "key": encodedKey, "value": .string(Base64.encode(Array(value.utf8))), "lease": .string(String(lease)),
            ])])]),
            "failure": .array([.object(["request_range": .object(["key": encodedKey])])]),
        ]))
        if answer.member("succeeded")?.boolValue == true {
            return (true, ElectionMachine.Holder(value: value, lease: lease))
        }
        let range = answer.member("responses")?.arrayValue?.first?.member("response_range")
        return (false, try Self.holder(in: range))
    }

    func read(key: String) throws(EtcdError) -> ElectionMachine.Holder? {
        try Self.holder(in: try post("/v3/kv/range", .object(["key": .string(Base64.encode(Array(key.utf8)))])))
    }

    private static func holder(in range: JSONValue?) throws(EtcdError) -> ElectionMachine.Holder? {
        guard let kv = range?.member("kvs")?.arrayValue?.first else { return nil }
        let value = kv.member("value")?.stringValue.flatMap(Base64.decode).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return ElectionMachine.Holder(value: value, lease: int64(kv.member("lease")) ?? 0)
    }

    /// etcd's gateway writes 64-bit numbers as strings.
    private static func int64(_ value: JSONValue?) -> Int64? {
        switch value {
        case .string(let text)?: Int64(text)
        case .number(let number)? where number.isFinite && abs(number) < 9e15: Int64(number)
        default: nil
        }
    }

    // MARK: - HTTP

    /// One request on a new connection (`Connection: close`), answered within `timeoutMs`.
    private func post(_ path: String, _ body: JSONValue) throws(EtcdError) -> JSONValue {
        let endpoint = endpoints[current]
        do {
            return try Self.post(path, body.serialized(), to: endpoint, timeoutMs: timeoutMs)
        } catch {
            current = (current + 1) % endpoints.count
            throw EtcdError("etcd \(endpoint.text)\(path): \(error.description)")
        }
    }

    private static func post(_ path: String, _ body: [UInt8], to endpoint: Endpoint, timeoutMs: Int) throws(EtcdError) -> JSONValue {
        let deadline = MonotonicClock.nowMs() + Int64(timeoutMs)
        let fd = try connect(endpoint, deadline: deadline)
        defer { close(fd) }
        let head = "POST \(path) HTTP/1.1\r\nHost: \(endpoint.text)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        try write(fd, Array(head.utf8) + body, deadline: deadline)
        let answer = try readAll(fd, deadline: deadline)
        let (status, payload) = try parseResponse(answer)
        let json: JSONValue
        do throws(JSONError) { json = try JSONValue.parse(payload) } catch {
            throw EtcdError("HTTP \(status), not JSON: \(error.message)")
        }
        guard status == 200 else {
            let message = json.member("message")?.stringValue ?? json.member("error")?.stringValue ?? "no message"
            throw EtcdError("HTTP \(status): \(message)")
        }
        return json
    }

    private static func remaining(_ deadline: Int64) throws(EtcdError) -> Int32 {
        let left = deadline - MonotonicClock.nowMs()
        guard left > 0 else { throw EtcdError("timed out") }
        return Int32(min(left, 60_000))
    }

    private static func connect(_ endpoint: Endpoint, deadline: Int64) throws(EtcdError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            throw EtcdError("cannot resolve \(endpoint.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            info.pointee.ai_protocol)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            guard errno == EINPROGRESS else {
                lastError = String(cString: strerror(errno))
                close(fd)
                continue
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&poller, 1, try remaining(deadline))
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if ready == 1, error == 0 { return fd }
            lastError = ready == 1 ? String(cString: strerror(error)) : "connect timed out"
            close(fd)
        }
        throw EtcdError("cannot connect: \(lastError)")
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8], deadline: Int64) throws(EtcdError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent > 0 { offset += sent; continue }
            guard sent < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                throw EtcdError("send failed: \(String(cString: strerror(errno)))")
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&poller, 1, try remaining(deadline))
        }
    }

    private static func readAll(_ fd: Int32, deadline: Int64) throws(EtcdError) -> [UInt8] {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count > 0 {
                answer.append(contentsOf: buffer[..<count])
                guard answer.count <= maxAnswerBytes else { throw EtcdError("answer over \(maxAnswerBytes) bytes") }
                continue
            }
            if count == 0 { return answer }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                throw EtcdError("receive failed: \(String(cString: strerror(errno)))")
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, try remaining(deadline))
        }
    }

    /// The status and the body (chunks joined) of an HTTP/1.1 response read to its end.
    static func parseResponse(_ bytes: [UInt8]) throws(EtcdError) -> (Int, [UInt8]) {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.firstRange(of: separator) else { throw EtcdError("no complete HTTP answer") }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let statusWords = lines.first?.split(separator: " ") ?? []
        guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), let status = Int(statusWords[1]) else {
            throw EtcdError("not an HTTP answer")
        }
        let chunked = lines.dropFirst().contains {
            $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked")
        }
        let body = Array(bytes[headEnd.upperBound...])
        guard chunked else { return (status, body) }
        var joined: [UInt8] = []
        var index = 0
        while index < body.count {
            guard let lineEnd = body[index...].firstRange(of: [13, 10]) else { throw EtcdError("bad chunk") }
            let sizeText = String(decoding: body[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingSpaces, radix: 16), size >= 0,
                  lineEnd.upperBound + size <= body.count else { throw EtcdError("bad chunk size") }
            if size == 0 { break }
            joined.append(contentsOf: body[lineEnd.upperBound..<(lineEnd.upperBound + size)])
            index = lineEnd.upperBound + size + 2
        }
        return (status, joined)
    }
}

/// Standard base64 (RFC 4648), as etcd's gateway writes keys and values.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index], b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 15) << 2 | b2 >> 6)] : 61)
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 63)] : 61)
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        for byte in text.utf8 where byte != 61 {
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt8(value))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            let v = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (18 - 6 * $1.offset) }
            out.append(UInt8(v >> 16 & 0xff))
            if chunk.count > 2 { out.append(UInt8(v >> 8 & 0xff)) }
            if chunk.count > 3 { out.append(UInt8(v & 0xff)) }
            index += 4
        }
        return out
    }
}
