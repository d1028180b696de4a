#if canImport(Glibc)
import Glibc
#endif
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// What `GET /health` answers: 200 while `serving`, 503 otherwise, with the body
/// `{"status":"<status>","role":"<role>"}`.
public struct HealthStatus: Sendable, Equatable {
    public var serving: Bool
    /// "serving", "standby", "stopped", ...
    public var status: String
    /// "single" (a coordinator on its own), or the part it plays among several.
    public var role: String
    /// More to say, as strings (an elected coordinator's leader, reason, etcd error).
    public var details: [String: String]

    public init(serving: Bool, status: String, role: String, details: [String: String] = [:]) {
        self.serving = serving
        self.status = status
        self.role = role
        self.details = details
    }

    public static func serving(role: String) -> HealthStatus { HealthStatus(serving: true, status: "serving", role: role) }
    /// A coordinator waiting to take over: up, but not serving.
    public static func standby(role: String = "standby") -> HealthStatus {
        HealthStatus(serving: false, status: "standby", role: role)
    }
    public static let stopped = HealthStatus(serving: false, status: "stopped", role: "single")

    public var json: JSONValue {
        var object = details.mapValues(JSONValue.string)
        object["status"] = .string(status)
        object["role"] = .string(role)
        return .object(object)
    }
}

/// A small HTTP/1.1 server for `GET /metrics` (Prometheus text) and `GET /health` (JSON), on a
/// thread of its own that polls its sockets.
///
/// Why a thread with poll() rather than a ZMQ_STREAM socket on a network server's IOLoop: it
/// outlives any one server (a standby coordinator has none running and still answers `/health`),
/// it answers even while a coordinator's loop is busy, and plain sockets give exact control of
/// what a peer may cost: each connection gets `timeoutMs` in all to send its request head (at
/// most `maxHeadBytes`) and read the answer, at most `maxConnections` are open at once (the
/// rest wait in the kernel's backlog), every answer closes its connection, and nothing a peer
/// sends is kept past its head. Methods other than GET and HEAD get 405, other paths 404.
///
/// Thread-safe; `stop` (or releasing it) closes the port.
public final class MetricsHTTPServer: @unchecked Sendable {
    public static let maxHeadBytes = 8192
    public static let maxConnections = 64
    public static let defaultTimeoutMs = 5000

    /// The port bound (the one asked for, or the one picked for 0).
    public let port: Int
    private let state: State

    /// Binds `host:port` ("0.0.0.0" or "*" for every address; port 0 picks a free one) and starts
    /// serving. `metrics` gives the `/metrics` body and `health` the `/health` answer; both are
    /// called on the server's thread, once per request. Throws `NetworkError.invalid` for an
    /// argument out of range and `NetworkError.bindFailed` when the address cannot be bound.
    public init(host: String = "127.0.0.1", port: Int, timeoutMs: Int = defaultTimeoutMs,
                logger: Logger = Logger(label: "hulynet.metrics"),
                metrics: @escaping @Sendable () -> [UInt8],
                health: @escaping @Sendable () -> HealthStatus) throws(NetworkError) {
        try checkHost(host, "metrics host")
        try checkPort(port, allowZero: true, "metrics port")
        try checkRange(timeoutMs, 1...Int(Timeouts.maxMs), "metrics timeout")
        let (fd, bound) = try Self.listen(host: host, port: port)
        self.port = bound
        state = State(listenFD: fd, timeoutMs: Int64(timeoutMs), logger: logger, metrics: metrics, health: health)
        state.start()
    }

    /// Stops serving and closes the port; idempotent. Connections open are closed unanswered.
    public func stop() { state.stop() }

    deinit { state.stop() }

    private static func listen(host: String, port: Int) throws(NetworkError) -> (Int32, Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let name: String? = (host == "*" || host == "0.0.0.0") ? nil : host
        let rc = name.withOptionalCString { getaddrinfo($0, String(port), &hints, &list) }
        guard rc == 0, let list else {
            throw NetworkError.bindFailed("\(host):\(port): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        // "*" and "0.0.0.0" list IPv4's wildcard first; a name takes its first address.
        var info: UnsafeMutablePointer<addrinfo>? = list
        if name == nil {
            while let current = info, current.pointee.ai_family != AF_INET { info = current.pointee.ai_next }
            if info == nil { info = list }
        }
        guard let chosen = info else { throw NetworkError.bindFailed("\(host):\(port): no address") }
        let fd = socket(chosen.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetworkError.bindFailed("\(host):\(port): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, chosen.pointee.ai_addr, chosen.pointee.ai_addrlen) == 0, Glibc.listen(fd, 128) == 0 else {
            let text = String(cString: strerror(errno))
            close(fd)
            throw NetworkError.bindFailed("\(host):\(port): \(text)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0 else {
            close(fd)
            throw NetworkError.bindFailed("\(host):\(port): getsockname failed")
        }
        let family = address.ss_family
        let boundPort: UInt16 = withUnsafePointer(to: &address) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
        }
        return (fd, Int(UInt16(bigEndian: boundPort)))
    }

    /// The server's thread and everything it touches. Only that thread reads or changes the
    /// connections; `stop` wakes it through a pipe and waits for it to end.
    final class State: @unchecked Sendable {
        let listenFD: Int32
        let timeoutMs: Int64
        let logger: Logger
        let metrics: @Sendable () -> [UInt8]
        let health: @Sendable () -> HealthStatus
        private var wake: [Int32] = [-1, -1]
        private var thread: pthread_t?
        private let lock = Lock()
        private var stopped = false

        struct Connection {
            let fd: Int32
            let deadline: Int64
            var head: [UInt8] = []
            /// The answer, once there is one, and how much of it is sent.
            var answer: [UInt8]?
            var sent = 0
            /// Answered and half-closed: what the peer still sends is read and dropped until it
            /// closes (closing with unread input would reset the connection, and the peer could
            /// lose the answer), at most `maxDrainBytes` and until the deadline.
            var draining = false
            var drained = 0
        }

        static let maxDrainBytes = 65536

        private var connections: [Connection] = []

        init(listenFD: Int32, timeoutMs: Int64, logger: Logger, metrics: @escaping @Sendable () -> [UInt8],
             health: @escaping @Sendable () -> HealthStatus) {
            self.listenFD = listenFD
            self.timeoutMs = timeoutMs
            self.logger = logger
            self.metrics = metrics
            self.health = health
            if pipe(&wake) == 0 {
                for fd in wake { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            }
        }

        func start() {
            let box = Unmanaged.passRetained(self)
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let state = Unmanaged<State>.fromOpaque(raw!).takeRetainedValue()
                state.run()
                return nil
            }, box.toOpaque())
            if rc == 0 {
                thread = tid
            } else {
                box.release()
                logger.error("metrics endpoint: cannot start its thread (\(rc))")
            }
        }

        func stop() {
            let first = lock.withLock { () -> Bool in
                defer { stopped = true }
                return !stopped
            }
            guard first else { return }
            var byte: UInt8 = 1
            _ = Glibc.write(wake[1], &byte, 1)
            if let thread, pthread_equal(thread, pthread_self()) == 0 {
                pthread_join(thread, nil)
            }
        }

        deinit {
            close(listenFD)
            close(wake[0])
            close(wake[1])
        }

        private func run() {
            var fds: [pollfd] = []
            while true {
                let now = MonotonicClock.nowMs()
                dropExpired(now: now)
                fds.removeAll(keepingCapacity: true)
                fds.append(pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0))
                // At the cap, newcomers wait in the kernel's backlog until a place frees.
                let accepting = connections.count < MetricsHTTPServer.maxConnections
                fds.append(pollfd(fd: accepting ? listenFD : -1, events: Int16(POLLIN), revents: 0))
                for connection in connections {
                    let events = connection.answer == nil || connection.draining ? POLLIN : POLLOUT
                    fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
                }
                let nearest = connections.map(\.deadline).min().map { max(0, $0 - now) } ?? -1
                let ready = poll(&fds, nfds_t(fds.count), Int32(clamping: nearest))
                if ready < 0 {
                    if errno == EINTR { continue }
                    logger.error("metrics endpoint: poll failed: \(String(cString: strerror(errno)))")
                    break
                }
                if fds[0].revents != 0 { break }
                // Connections first (their indexes match `fds` only until one is removed).
                var index = connections.count - 1
                while index >= 0 {
                    let revents = fds[index + 2].revents
                    if revents != 0 { serve(index, revents: revents) }
                    index -= 1
                }
                if accepting, fds[1].revents != 0 { acceptAll() }
            }
            for connection in connections { close(connection.fd) }
            connections.removeAll()
        }

        private func acceptAll() {
            while connections.count < MetricsHTTPServer.maxConnections {
                let fd = accept(listenFD, nil, nil)
                if fd < 0 { return } // EAGAIN, or a connection that went before it was taken
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                connections.append(Connection(fd: fd, deadline: MonotonicClock.nowMs() + timeoutMs))
            }
        }

        /// A peer that has not sent its head, or not read its answer, in time is closed (told
        /// 408 if it still had to send its head and the socket takes it at once).
        private func dropExpired(now: Int64) {
            guard connections.contains(where: { $0.deadline <= now }) else { return }
            for connection in connections where connection.deadline <= now {
                if connection.answer == nil && !connection.draining {
                    let answer = Self.response(status: "408 Request Timeout", type: "text/plain", body: Array("request timeout\n".utf8))
                    _ = answer.withUnsafeBytes { send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                close(connection.fd)
            }
            connections.removeAll { $0.deadline <= now }
        }

        private func serve(_ index: Int, revents: Int16) {
            if connections[index].draining {
                drain(index)
            } else if connections[index].answer == nil {
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { receive(index) }
            } else if revents & Int16(POLLOUT | POLLHUP | POLLERR) != 0 {
                transmit(index)
            }
        }

        private func finish(_ index: Int) {
            close(connections[index].fd)
            connections.remove(at: index)
        }

        private func receive(_ index: Int) {
            let room = MetricsHTTPServer.maxHeadBytes + 1 - connections[index].head.count
            var chunk = [UInt8](repeating: 0, count: min(room, 4096))
            let count = chunk.withUnsafeMutableBytes { recv(connections[index].fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                finish(index)
                return
            }
            if count == 0 {
                finish(index) // gone before its request was whole
                return
            }
            connections[index].head.append(contentsOf: chunk[0..<count])
            if let end = Self.endOfHead(connections[index].head) {
                connections[index].answer = answer(to: connections[index].head[..<end])
                connections[index].head = []
            } else if connections[index].head.count > MetricsHTTPServer.maxHeadBytes {
                connections[index].answer = Self.response(status: "431 Request Header Fields Too Large", type: "text/plain",
                                                          body: Array("request head over \(MetricsHTTPServer.maxHeadBytes) bytes\n".utf8))
                connections[index].head = []
            } else {
                return
            }
            transmit(index) // most answers fit the socket's buffer at once
        }

        private func transmit(_ index: Int) {
            guard let answer = connections[index].answer else { return }
            let sent = connections[index].sent
            let count = answer.withUnsafeBytes {
                send(connections[index].fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                finish(index)
                return
            }
            connections[index].sent += count
            if connections[index].sent >= answer.count {
                shutdown(connections[index].fd, Int32(SHUT_WR))
                connections[index].answer = nil
                connections[index].draining = true
            }
        }

        private func drain(_ index: Int) {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(connections[index].fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
            connections[index].drained += max(count, 0)
            if count <= 0 || connections[index].drained > Self.maxDrainBytes { finish(index) }
        }

        /// Where the head ends (after its blank line), if it has.
        static func endOfHead(_ bytes: [UInt8]) -> Int? {
            var index = 0
            while index + 1 < bytes.count {
                if bytes[index] == UInt8(ascii: "\n") {
                    if bytes[index + 1] == UInt8(ascii: "\n") { return index + 2 }
                    if bytes[index + 1] == UInt8(ascii: "\r"), index + 2 < bytes.count, bytes[index + 2] == UInt8(ascii: "\n") {
                        return index + 3
                    }
                }
                index += 1
            }
            return nil
        }

        /// The answer to a whole request head.
        func answer(to head: ArraySlice<UInt8>) -> [UInt8] {
            let line = head.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
            let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard parts.count == 3, parts[2].starts(with: "HTTP/1.".utf8), parts[1].first == UInt8(ascii: "/") else {
                return Self.response(status: "400 Bad Request", type: "text/plain", body: Array("bad request\n".utf8))
            }
            let method = parts[0]
            let isHead = method.elementsEqual("HEAD".utf8)
            guard isHead || method.elementsEqual("GET".utf8) else {
                return Self.response(status: "405 Method Not Allowed", type: "text/plain",
                                     body: Array("only GET and HEAD\n".utf8), extra: "Allow: GET, HEAD\r\n")
            }
            let path = parts[1].prefix { $0 != UInt8(ascii: "?") }
            if path.elementsEqual("/metrics".utf8) {
                return Self.response(status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: metrics(),
                                     omitBody: isHead)
            }
            if path.elementsEqual("/health".utf8) {
                let health = health()
                var body = health.json.serialized()
                body.append(UInt8(ascii: "\n"))
                return Self.response(status: health.serving ? "200 OK" : "503 Service Unavailable", type: "application/json",
                                     body: body, omitBody: isHead)
            }
            return Self.response(status: "404 Not Found", type: "text/plain", body: Array("not found\n".utf8), omitBody: isHead)
        }

        static func response(status: String, type: String, body: [UInt8], extra: String = "",
                             omitBody: Bool = false) -> [UInt8] {
            var out = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\nCache-Control: no-store\r\n\r\n".utf8)
            if !omitBody { out.append(contentsOf: body) }
            return out
        }
    }
}

extension Optional where Wrapped == String {
    fileprivate func withOptionalCString<T>(_ body: (UnsafePointer<CChar>?) -> T) -> T {
        switch self {
        case .some(let string): string.withCString { body($0) }
        case .none: body(nil)
        }
    }
}
