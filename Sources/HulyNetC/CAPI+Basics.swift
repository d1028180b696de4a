import CHulyNet
import HulyNet
import HulyNetCore
import HulyNetSync
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Version, errors, memory

// From hulynet.h's macros, the library's own copy; scripts/check-version.sh and the CMake build
// check them against VERSION.
private let versionString = OwnedCString("\(HULYNET_VERSION_MAJOR).\(HULYNET_VERSION_MINOR).\(HULYNET_VERSION_PATCH)")

@_cdecl("hulynet_version_number")
public func hulynet_version_number() -> UInt32 {
    UInt32(HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH)
}

@_cdecl("hulynet_version_string")
public func hulynet_version_string() -> UnsafePointer<CChar>? { versionString.constPointer }

private let statusTexts: [Int32: OwnedCString] = [
    HULYNET_OK: OwnedCString("ok"),
    HULYNET_EINVAL: OwnedCString("invalid argument"),
    HULYNET_EJSON: OwnedCString("invalid JSON"),
    HULYNET_ENOTFOUND: OwnedCString("not found"),
    HULYNET_ETIMEOUT: OwnedCString("timed out"),
    HULYNET_ECLOSED: OwnedCString("closed"),
    HULYNET_EREMOTE: OwnedCString("the other side answered with an error"),
    HULYNET_EBIND: OwnedCString("cannot bind the address"),
    HULYNET_ECONNECT: OwnedCString("cannot connect"),
    HULYNET_EINTERNAL: OwnedCString("internal error"),
    HULYNET_EAGAIN: OwnedCString("retry later"),
    HULYNET_ELIMIT: OwnedCString("a limit is reached"),
]
private let unknownStatus = OwnedCString("unknown status")
private let emptyText = OwnedCString("")

@_cdecl("hulynet_strerror")
public func hulynet_strerror(_ status: Int32) -> UnsafePointer<CChar>? {
    (statusTexts[status] ?? unknownStatus).constPointer
}

@_cdecl("hulynet_last_error")
public func hulynet_last_error() -> UnsafePointer<CChar>? {
    LastError.get() ?? emptyText.constPointer
}

@_cdecl("hulynet_free")
public func hulynet_free(_ pointer: UnsafeMutableRawPointer?) {
    free(pointer)
}

// MARK: - Shutdown

@_cdecl("hulynet_shutdown")
public func hulynet_shutdown(_ timeoutMs: Int64) -> Int32 {
    cCall {
        let ms = try timeout(timeoutMs, default: 5000)
        let live = Handles.count
        guard live == 0 else {
            throw CFailure.invalid("\(live) handle(s) are still alive (\(Handles.liveKinds)): destroy every handle before hulynet_shutdown")
        }
        CLogSink.set(nil, minLevel: HULYNET_LOG_WARNING) // the log handler's destroy notification
        // zmq_ctx_term waits for sockets still closing (a destroyed connection closes in the
        // background); bounded here, and the context is let go either way.
        guard releaseSharedZeroMQContext(timeoutMs: ms) else {
            throw CFailure(status: HULYNET_ETIMEOUT, message: "sockets were still closing after \(ms) ms; the ZeroMQ context ends when they have")
        }
    }
}

// MARK: - Logging

/// The C log callback, shared by every logger the C API makes.
enum CLogSink {
    struct Target: CHandler, @unchecked Sendable {
        let fn: hulynet_log_fn
        let user: UnsafeMutableRawPointer?
        let destroy: hulynet_destroy_fn?
        func destroyed() { if let destroy { CallbackThread.run { destroy(user) } } }
    }

    /// The C function (none: the default, stderr); a slot, so that its destroy notification
    /// comes once no log call uses it.
    static let slot = CallbackSlot<Target>()
    private static let level = Atomic<Int32>(HULYNET_LOG_WARNING)
    private static let hasTarget = Atomic<Bool>(false)

    static func set(_ new: Target?, minLevel: Int32) {
        level.store(minLevel, ordering: .relaxed)
        hasTarget.store(new != nil, ordering: .relaxed)
        slot.set(new)
    }

    static var minLevel: Int32 { level.load(ordering: .relaxed) }
    static var isSet: Bool { hasTarget.load(ordering: .relaxed) }

    static func logger(_ label: String) -> Logger {
        Logger(label: label) { CLogHandler(label: $0) }
    }
}

struct CLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = Int32(event.level.cLevel)
        guard level >= CLogSink.minLevel else { return }
        let text = "[\(label)] \(event.message)"
        if CLogSink.isSet {
            CLogSink.slot.call { target in
                text.withCString { pointer in CallbackThread.run { target.fn(target.user, level, pointer) } }
            }
        } else {
            let line = "hulynet \(event.level): \(text)\n"
            line.withCString { _ = write(2, $0, strlen($0)) }
        }
    }
}

extension Logger.Level {
    var cLevel: Int32 {
        switch self {
        case .trace: HULYNET_LOG_TRACE
        case .debug: HULYNET_LOG_DEBUG
        case .info: HULYNET_LOG_INFO
        case .notice: HULYNET_LOG_NOTICE
        case .warning: HULYNET_LOG_WARNING
        case .error: HULYNET_LOG_ERROR
        case .critical: HULYNET_LOG_CRITICAL
        }
    }
}

@_cdecl("hulynet_set_log_handler")
public func hulynet_set_log_handler(_ fn: hulynet_log_fn?, _ user: UnsafeMutableRawPointer?, _ minLevel: Int32) -> Int32 {
    hulynet_set_log_handler_v2(fn, user, nil, minLevel)
}

@_cdecl("hulynet_set_log_handler_v2")
public func hulynet_set_log_handler_v2(_ fn: hulynet_log_fn?, _ user: UnsafeMutableRawPointer?, _ destroy: hulynet_destroy_fn?,
                                       _ minLevel: Int32) -> Int32 {
    cCall {
        guard (HULYNET_LOG_TRACE...HULYNET_LOG_CRITICAL).contains(minLevel) else {
            throw CFailure.invalid("min_level \(minLevel) is not a HULYNET_LOG_* level")
        }
        CLogSink.set(fn.map { CLogSink.Target(fn: $0, user: user, destroy: destroy) },
                     minLevel: fn == nil ? max(minLevel, HULYNET_LOG_WARNING) : minLevel)
    }
}

// MARK: - Timeouts

/// How a caller's option struct is laid out (include/hulynet.h, "Growth").
enum StructLayout {
    /// hulynet.h 0.1: no size field.
    case v0_1
    /// A first field `size` with HULYNET_SIZE_TAG: the caller's struct is this many bytes.
    case sized(Int)

    static let tag: UInt64 = 0x484E << 48
    static let tagMask: UInt64 = 0xFFFF << 48

    /// Reads the first word; for a sized struct checks the size, and that the bytes past what
    /// this library knows (`known`, its own sizeof) are zero: a newer caller's field that this
    /// version would ignore is an error, not a silent default.
    static func of(_ raw: UnsafeRawPointer, known: Int, _ name: String) throws(CFailure) -> StructLayout {
        let first = raw.loadUnaligned(as: UInt64.self)
        guard first & tagMask == tag else { return .v0_1 }
        let size = Int(first & ~tagMask)
        guard size >= 8, size <= 1 << 16, size % 8 == 0 else {
            throw .invalid("\(name).size \(size) is not the size of a hulynet struct (use its HULYNET_*_INIT)")
        }
        if size > known {
            for offset in known..<size where raw.load(fromByteOffset: offset, as: UInt8.self) != 0 {
                throw .invalid("\(name) sets a field at byte \(offset) that libhulynet \(hulynetVersion) does not know")
            }
        }
        return .sized(size)
    }

    /// Whether a field at `offset` (of `width` bytes) is in the caller's struct.
    func has(_ offset: Int, _ width: Int = 8) -> Bool {
        switch self {
        case .v0_1: true
        case .sized(let size): offset + width <= size
        }
    }
}

func cTimeouts(_ pointer: UnsafePointer<hulynet_timeouts>?) throws(CFailure) -> Timeouts {
    var timeouts = Timeouts.reference
    guard let pointer else { return timeouts }
    let raw = UnsafeRawPointer(pointer)
    let layout = try StructLayout.of(raw, known: MemoryLayout<hulynet_timeouts>.size, "timeouts")
    // The fields in order, with their offsets in each layout (0.1 had no size field before them).
    let names = ["alive_ms", "unused_container_ms", "ping_interval_ms", "request_ms", "tick_ms"]
    var values = [Int64](repeating: 0, count: names.count)
    for index in names.indices {
        let offset: Int
        switch layout {
        case .v0_1:
            guard index < 4 else { continue } // 0.1 had four fields
            offset = index * 8
        case .sized:
            offset = 8 + index * 8
            guard layout.has(offset) else { continue }
        }
        let value = raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)
        guard value >= 0, value <= Timeouts.maxMs else {
            throw .invalid("timeouts.\(names[index]) \(value) is out of range (0 to \(Timeouts.maxMs))")
        }
        values[index] = value
    }
    if values[0] > 0 { timeouts.aliveMs = values[0] }
    if values[1] > 0 { timeouts.unusedContainerMs = values[1] }
    if values[2] > 0 { timeouts.pingIntervalMs = values[2] }
    if values[3] > 0 { timeouts.requestMs = values[3] }
    if values[4] > 0 { timeouts.tickMs = values[4] }
    return timeouts
}

func cPort(_ port: Int32, allowZero: Bool = true) throws(CFailure) -> Int {
    guard (allowZero ? 0 : 1)...65535 ~= port else { throw .invalid("port \(port) is out of range") }
    return Int(port)
}

// MARK: - Server

final class CServer {
    let server: NetworkServer
    init(_ server: NetworkServer) { self.server = server }
}

@_cdecl("hulynet_server_start")
public func hulynet_server_start(_ host: UnsafePointer<CChar>?, _ port: Int32, _ timeouts: UnsafePointer<hulynet_timeouts>?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let host = try cHost(host, "host")
        let configuration = NetworkServer.Configuration(host: host == "*" ? "0.0.0.0" : host, port: try cPort(port),
                                                        timeouts: try cTimeouts(timeouts),
                                                        logger: CLogSink.logger("hulynet.server"))
        let server: NetworkServer
        do { server = try NetworkServer(configuration) } catch {
            throw CFailure(error) // EINVAL for a setting out of range, EBIND for an address taken
        }
        out.pointee = Handles.make(CServer(server))
    }
}

@_cdecl("hulynet_server_port")
public func hulynet_server_port(_ handle: OpaquePointer?) -> Int32 {
    var port: Int32 = 0
    let status = cCall { port = Int32(try Handles.get(handle, CServer.self, "server").server.port) }
    return status == HULYNET_OK ? port : status
}

@_cdecl("hulynet_server_stats_get")
public func hulynet_server_stats_get(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<hulynet_server_stats>?) -> Int32 {
    cCall {
        let server = try Handles.get(handle, CServer.self, "server").server
        guard let out else { throw CFailure.invalid("out is NULL") }
        let stats = server.stats()
        out.pointee = hulynet_server_stats(clients: Int64(stats.clients), agents: Int64(stats.agents),
                                           containers: Int64(stats.containers), requests: Int64(stats.requests),
                                           malformed: Int64(stats.malformed))
    }
}

@_cdecl("hulynet_server_destroy")
public func hulynet_server_destroy(_ handle: OpaquePointer?) {
    Handles.take(handle, CServer.self)?.server.stop()
}
