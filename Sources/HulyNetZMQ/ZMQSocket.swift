import CZeroMQ
import HulyNetSync
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An error reported by libzmq: its errno value and `zmq_strerror` text.
public struct ZMQError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let message: String

    public init(code: Int32, context: String = "") {
        self.code = code
        let text = String(cString: zmq_strerror(code))
        self.message = context.isEmpty ? text : "\(context): \(text)"
    }

    /// The error of the last failed libzmq call on this thread.
    public static func last(_ context: String = "") -> ZMQError {
        ZMQError(code: hulynet_zmq_errno(), context: context)
    }

    public var description: String { message }

    public var isAgain: Bool { code == EAGAIN }
    public var isInterrupted: Bool { code == EINTR }
    /// The peer a ROUTER was asked to send to is not (or no longer) connected.
    public var isHostUnreachable: Bool { code == EHOSTUNREACH }
}

/// A ZeroMQ context. One shared context serves a whole process; sockets made from it are
/// independent. libzmq contexts are thread-safe.
public final class ZMQContext: @unchecked Sendable {
    public let handle: UnsafeMutableRawPointer

    private static let sharedLock = Lock()
    nonisolated(unsafe) private static var current: ZMQContext?

    /// The process's shared context, made on first use (again after `releaseShared`).
    public static var shared: ZMQContext {
        sharedLock.withLock {
            if let current { return current }
            let made = ZMQContext()
            current = made
            return made
        }
    }

    /// Lets the shared context go: the next use of `shared` makes a new one. Returns the old
    /// one (nil if none was made) for the caller to terminate once its sockets are closed.
    public static func releaseShared() -> ZMQContext? {
        sharedLock.withLock {
            defer { current = nil }
            return current
        }
    }

    public init(ioThreads: Int32 = 1, maxSockets: Int32 = 10_000) {
        guard let context = zmq_ctx_new() else { fatalError("zmq_ctx_new failed: out of memory") }
        handle = context
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, maxSockets)
        // A blocked signal handler must never be installed by libzmq in a host program.
        zmq_ctx_set(handle, ZMQ_BLOCKY, 0)
    }

    private let terminated = Atomic<Bool>(false)

    /// Waits until every socket of the context is closed and its I/O threads are done (a bound
    /// port is free again when this returns); idempotent. Close the sockets first.
    public func terminate() {
        guard !terminated.exchange(true, ordering: .acquiringAndReleasing) else { return }
        while zmq_ctx_term(handle) != 0 && hulynet_zmq_errno() == EINTR {}
    }

    deinit { terminate() }

    /// libzmq's version as (major, minor, patch).
    public static var libraryVersion: (Int32, Int32, Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }
}

public enum ZMQSocketType: Int32, Sendable {
    case pair = 0
    case rep = 4
    case dealer = 5
    case router = 6
    case pull = 7
    case push = 8
}

/// One ZeroMQ socket. Like every libzmq socket it is not thread-safe: it is created, used and
/// closed on one thread at a time (hulynet confines each socket to its `IOLoop` thread).
public final class ZMQSocket {
    // Confined to one thread at a time (below): no run-time exclusivity checks, which would
    // cost on every message.
    @exclusivity(unchecked) public private(set) var handle: UnsafeMutableRawPointer?
    public let type: ZMQSocketType

    public init(context: ZMQContext = .shared, type: ZMQSocketType) throws(ZMQError) {
        guard let socket = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket")
        }
        self.handle = socket
        self.type = type
        try setOption(ZMQ_LINGER, 0)
    }

    deinit { close() }

    @exclusivity(unchecked) private var monitored = false

    /// Closes the socket; idempotent. A monitor is stopped first: libzmq's I/O thread blocks
    /// sending monitor events to a reader that is gone, stalling every socket of the context.
    public func close() {
        if let handle {
            if monitored {
                zmq_socket_monitor(handle, nil, 0)
                monitored = false
            }
            zmq_close(handle)
            self.handle = nil
        }
    }

    private func live() throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(code: ENOTSOCK, context: "socket is closed") }
        return handle
    }

    public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var value = value
        let socket = try live()
        if zmq_setsockopt(socket, option, &value, MemoryLayout<Int32>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    public func setOption64(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var value = value
        let socket = try live()
        if zmq_setsockopt(socket, option, &value, MemoryLayout<Int64>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
        let socket = try live()
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(socket, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func intOption(_ option: Int32) throws(ZMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        let socket = try live()
        if zmq_getsockopt(socket, option, &value, &size) != 0 { throw ZMQError.last("zmq_getsockopt(\(option))") }
        return value
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        let socket = try live()
        if zmq_bind(socket, endpoint) != 0 { throw ZMQError.last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        let socket = try live()
        if zmq_connect(socket, endpoint) != 0 { throw ZMQError.last("connect \(endpoint)") }
    }

    /// Drops a connection made with `connect` and what was queued for it.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let socket = try live()
        if zmq_disconnect(socket, endpoint) != 0 { throw ZMQError.last("disconnect \(endpoint)") }
    }

    /// The endpoint the socket last bound to, e.g. "tcp://0.0.0.0:3737".
    public func lastEndpoint() throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        let socket = try live()
        if zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &buffer, &size) != 0 {
            throw ZMQError.last("ZMQ_LAST_ENDPOINT")
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The TCP port of the last bound endpoint.
    public func boundPort() throws(ZMQError) -> Int {
        let endpoint = try lastEndpoint()
        guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]) else {
            throw ZMQError(code: EINVAL, context: "no port in \(endpoint)")
        }
        return port
    }

    /// Sends a multipart message. Returns false when it would block (only with `dontWait`).
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = true) throws(ZMQError) -> Bool {
        let socket = try live()
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < last { flags |= ZMQ_SNDMORE }
            let rc = frame.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags) }
            if rc < 0 {
                let error = ZMQError.last("send")
                // Only the first frame can be refused on its own; later frames are queued atomically.
                if error.isAgain && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Sends the four-frame message every back-RPC server message is (`[identity, op, id,
    /// payload]`), with no array of frames in between. Returns false when it would block.
    @discardableResult
    public func send(_ first: [UInt8], _ second: [UInt8], _ third: [UInt8], _ fourth: [UInt8],
                     dontWait: Bool = true) throws(ZMQError) -> Bool {
        let socket = try live()
        let flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
        let rc = first.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags | ZMQ_SNDMORE) }
        if rc < 0 {
            let error = ZMQError.last("send")
            if error.isAgain { return false }
            throw error
        }
        // Later frames are queued with the first, atomically.
        if second.withUnsafeBytes({ zmq_send(socket, $0.baseAddress, $0.count, flags | ZMQ_SNDMORE) }) < 0 { throw ZMQError.last("send") }
        if third.withUnsafeBytes({ zmq_send(socket, $0.baseAddress, $0.count, flags | ZMQ_SNDMORE) }) < 0 { throw ZMQError.last("send") }
        if fourth.withUnsafeBytes({ zmq_send(socket, $0.baseAddress, $0.count, flags) }) < 0 { throw ZMQError.last("send") }
        return true
    }

    /// The file descriptor of the connection the last received message came from (-1 when
    /// unknown): it names a peer of a ROUTER in its socket monitor's events. Read only for
    /// messages whose second frame is `sourceFDSecondFrame`, when that is set (libzmq looks it
    /// up as text in the message's properties: about 500 instructions a message).
    @exclusivity(unchecked) public private(set) var lastSourceFD: Int32 = -1
    @exclusivity(unchecked) public var sourceFDSecondFrame: [UInt8]?
    /// Whether `receive` reads the "User-Id" a ZAP handler gave the sender's connection (a CURVE
    /// server with authentication); off, nothing is looked up.
    @exclusivity(unchecked) public var readsUserId = false
    /// The "User-Id" of the last message received, when `readsUserId`.
    @exclusivity(unchecked) public private(set) var lastUserId: String?

    /// Every one-byte frame, shared: op frames and other one-byte frames are received with no
    /// allocation.
    private static let singleByteFrames: [[UInt8]] = (0...255).map { [UInt8($0)] }

    /// Receives one multipart message, or nil when none is waiting (only with `dontWait`).
    /// Messages with more than `maxFrames` frames or `maxBytes` bytes are read to the end and
    /// reported as `.oversize` rather than kept in memory.
    public func receive(dontWait: Bool = true, maxFrames: Int = 64, maxBytes: Int = 64 << 20) throws(ZMQError) -> ZMQReceived? {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(5) // identity, op, id, payload and one spare: one allocation
        switch try receive(into: &frames, dontWait: dontWait, maxFrames: maxFrames, maxBytes: maxBytes) {
        case .none: return nil
        case .message: return .message(frames)
        case .oversize(let total): return .oversize(headFrames: frames, totalBytes: total)
        }
    }

    public enum ReceiveStatus {
        /// Nothing was waiting (only with `dontWait`).
        case none
        case message
        /// A message over the limits: `frames` holds those before the limit was crossed.
        case oversize(totalBytes: Int)
    }

    /// `receive` into an array the caller keeps from message to message (its old frames are
    /// let go, its storage reused): a server reading thousands of messages a second allocates
    /// no array of frames for each.
    public func receive(into frames: inout [[UInt8]], dontWait: Bool = true, maxFrames: Int = 64,
                        maxBytes: Int = 64 << 20) throws(ZMQError) -> ReceiveStatus {
        let socket = try live()
        frames.removeAll(keepingCapacity: true)
        var total = 0
        var oversize = false
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            let flags: Int32 = (dontWait && frames.isEmpty && !oversize) ? ZMQ_DONTWAIT : 0
            let rc = zmq_msg_recv(&message, socket, flags)
            if rc < 0 {
                let error = ZMQError.last("recv")
                if error.isAgain && frames.isEmpty && !oversize { return .none }
                if error.isInterrupted { continue }
                throw error
            }
            if frames.isEmpty && !oversize {
                lastSourceFD = -1
                if sourceFDSecondFrame == nil { lastSourceFD = zmq_msg_get(&message, ZMQ_SRCFD) }
                if readsUserId { lastUserId = nil }
            } else if frames.count == 1, !oversize, let wanted = sourceFDSecondFrame,
                      zmq_msg_size(&message) == wanted.count,
                      wanted.elementsEqual(UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: wanted.count)) {
                lastSourceFD = zmq_msg_get(&message, ZMQ_SRCFD)
            }
            // A ROUTER's identity frame is its own: the peer's metadata comes with the next one.
            if readsUserId, lastUserId == nil, let text = zmq_msg_gets(&message, "User-Id") { lastUserId = String(cString: text) }
            let size = zmq_msg_size(&message)
            total += size
            if !oversize && (frames.count >= maxFrames || total > maxBytes) {
                // Keep the small frames before it (identity, op, request id) to answer with an error.
                oversize = true
            }
            if !oversize {
                switch size {
                case 0: frames.append([])
                case 1: frames.append(Self.singleByteFrames[Int(zmq_msg_data(&message)!.load(as: UInt8.self))])
                default: frames.append([UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(&message)!, count: size)))
                }
            }
            if zmq_msg_more(&message) == 0 { break }
        }
        return oversize ? .oversize(totalBytes: total) : .message
    }

    /// Starts a monitor for `events` and returns the PAIR socket that receives them.
    public func monitor(events: Int32, context: ZMQContext = .shared) throws(ZMQError) -> ZMQMonitor {
        let socket = try live()
        let address = "inproc://hulynet-monitor-\(ZMQMonitor.nextId())"
        if zmq_socket_monitor(socket, address, events) != 0 { throw ZMQError.last("zmq_socket_monitor") }
        monitored = true
        let pair = try ZMQSocket(context: context, type: .pair)
        try pair.connect(address)
        return ZMQMonitor(socket: pair)
    }
}

public enum ZMQReceived {
    case message([[UInt8]])
    /// A message over the limits: the frames that came before the limit was crossed, and its size.
    case oversize(headFrames: [[UInt8]], totalBytes: Int)
}

/// The receiving end of a socket monitor.
public final class ZMQMonitor {
    public let socket: ZMQSocket
    private static let counter = Atomic<Int>(0)

    init(socket: ZMQSocket) { self.socket = socket }

    static func nextId() -> Int {
        counter.add(1, ordering: .relaxed).newValue
    }

    public struct Event: Sendable {
        public let event: UInt16
        public let value: UInt32
        public let endpoint: String
        public var isConnected: Bool { Int32(event) == ZMQ_EVENT_CONNECTED }
        public var isDisconnected: Bool { Int32(event) == ZMQ_EVENT_DISCONNECTED }
        public var isAccepted: Bool { Int32(event) == ZMQ_EVENT_ACCEPTED }
        /// The security handshake failed: the server refused this client's key (ZAP), or the
        /// keys do not match (a wrong server key), or the peer speaks no CURVE.
        public var handshakeFailure: String? {
            switch Int32(event) {
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: "the server refused this client's key (not on its allow list)"
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                "the security handshake failed (a wrong server key, or CURVE on one side only)"
            default: nil
            }
        }
        /// A connection attempt failed (refused, unreachable) and will be retried.
        public var isConnectRetried: Bool { Int32(event) == ZMQ_EVENT_CONNECT_RETRIED }
    }

    /// The next monitor event, or nil when none is waiting.
    public func next() throws(ZMQError) -> Event? {
        guard case .message(let frames)? = try socket.receive(dontWait: true), frames.count >= 2, frames[0].count >= 6 else {
            return nil
        }
        let head = frames[0]
        let event = UInt16(head[0]) | UInt16(head[1]) << 8
        let value = UInt32(head[2]) | UInt32(head[3]) << 8 | UInt32(head[4]) << 16 | UInt32(head[5]) << 24
        return Event(event: event, value: value, endpoint: String(decoding: frames[1], as: UTF8.self))
    }

    public func close() { socket.close() }
}

/// Polls ZeroMQ sockets and plain file descriptors together.
public struct ZMQPoller {
    public var items: [zmq_pollitem_t] = []

    public init() {}

    public mutating func add(_ socket: ZMQSocket) {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
    }

    public mutating func add(fd: Int32) {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0))
    }

    /// Waits up to `timeoutMs` (-1 forever). Returns the number of ready items.
    public mutating func poll(timeoutMs: Int) throws(ZMQError) -> Int {
        let count = Int32(items.count)
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, count, timeoutMs) }
        if rc < 0 {
            let error = ZMQError.last("zmq_poll")
            if error.isInterrupted { return 0 }
            throw error
        }
        return Int(rc)
    }

    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & Int16(ZMQ_POLLIN) != 0
    }
}
