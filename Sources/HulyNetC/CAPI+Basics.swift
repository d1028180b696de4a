import CHulyNet
import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ // CURVE keys (Curve, CurveKeyPair)
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
        _ = CSpanSink.set(nil) // the span handler's
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
        /// A line with the fields appended as key=value (hulynet_set_log_handler), or a record
        /// with them apart (hulynet_set_log_record_handler).
        enum Function {
            case line(hulynet_log_fn)
            case record(hulynet_log_record_fn)
        }
        let fn: Function
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
        // Structured fields (agent, client, container, kind, ...), in key order.
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.keys.sorted().map { ($0, "\(merged[$0]!)") }
        let message = "\(event.message)"
        guard CLogSink.isSet else {
            let line = "hulynet \(event.level): \(Self.line(label, message, fields))\n"
            line.withCString { _ = write(2, $0, strlen($0)) }
            return
        }
        CLogSink.slot.call { target in
            switch target.fn {
            case .line(let fn):
                Self.line(label, message, fields).withCString { pointer in CallbackThread.run { fn(target.user, level, pointer) } }
            case .record(let fn):
                Self.withCFields(fields) { cFields in
                    label.withCString { logger in
                        message.withCString { text in
                            CallbackThread.run { fn(target.user, level, logger, text, cFields.baseAddress, cFields.count) }
                        }
                    }
                }
            }
        }
    }

    /// "[label] message key=value ...", values with spaces quoted.
    static func line(_ label: String, _ message: String, _ fields: [(String, String)]) -> String {
        var text = "[\(label)] \(message)"
        for (key, value) in fields {
            text += value.contains(" ") || value.isEmpty ? " \(key)=\"\(value)\"" : " \(key)=\(value)"
        }
        return text
    }

    /// The fields as C strings, valid during `body`.
    static func withCFields(_ fields: [(String, String)], _ body: (UnsafeBufferPointer<hulynet_log_field>) -> Void) {
        let strings = fields.map { (strdup($0.0), strdup($0.1)) }
        defer { for (key, value) in strings { free(key); free(value) } }
        let cFields = strings.map { hulynet_log_field(key: $0.0, value: $0.1) }
        cFields.withUnsafeBufferPointer(body)
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
        CLogSink.set(fn.map { CLogSink.Target(fn: .line($0), user: user, destroy: destroy) },
                     minLevel: fn == nil ? max(minLevel, HULYNET_LOG_WARNING) : minLevel)
    }
}

@_cdecl("hulynet_set_log_record_handler")
public func hulynet_set_log_record_handler(_ fn: hulynet_log_record_fn?, _ user: UnsafeMutableRawPointer?,
                                           _ destroy: hulynet_destroy_fn?, _ minLevel: Int32) -> Int32 {
    cCall {
        guard (HULYNET_LOG_TRACE...HULYNET_LOG_CRITICAL).contains(minLevel) else {
            throw CFailure.invalid("min_level \(minLevel) is not a HULYNET_LOG_* level")
        }
        CLogSink.set(fn.map { CLogSink.Target(fn: .record($0), user: user, destroy: destroy) },
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

    /// A `size` field of a struct new in 0.2 (no 0.1 layout to tell from): sizeof(type), or
    /// HULYNET_STRUCT_SIZE(type) as for every option struct.
    static func size(_ field: Int) -> Int {
        let bits = UInt64(UInt(bitPattern: field))
        return bits & tagMask == tag ? Int(bits & ~tagMask) : field
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

/// A coordinator of the C API: one on its own, or one of several elected through etcd (which
/// serves only while it leads).
final class CServer: @unchecked Sendable { // its refs never change; `http` is behind the lock
    private let single: NetworkServer?
    let elected: ElectedCoordinator?
    let port: Int
    /// The HTTP endpoint of `hulynet_server_serve_metrics`, stopped with the server.
    private let lock = Lock()
    private var http: MetricsHTTPServer?

    init(_ server: NetworkServer) {
        single = server
        elected = nil
        port = server.port
    }

    init(_ elected: ElectedCoordinator) {
        single = nil
        self.elected = elected
        port = elected.configuration.server.port
    }

    /// The coordinator serving now (none while an elected one stands by).
    var server: NetworkServer? { single ?? elected?.server }

    /// Its metrics: the single server's, or the registry an elected one's servers share.
    var metricsBytes: [UInt8] {
        (single?.configuration.metrics ?? elected?.configuration.server.metrics)?.prometheusBytes() ?? []
    }

    /// What /health says now.
    var health: HealthStatus { single?.health() ?? elected?.healthStatus() ?? .stopped }

    /// Starts the endpoint; nil when one is already running.
    func serveMetrics(start: () throws(NetworkError) -> MetricsHTTPServer) throws(NetworkError) -> MetricsHTTPServer? {
        let result = lock.withLock { () -> Result<MetricsHTTPServer, NetworkError>? in
            guard http == nil, single?.metricsServer == nil, elected?.metricsServer == nil else { return nil }
            do throws(NetworkError) {
                let started = try start()
                http = started
                return .success(started)
            } catch {
                return .failure(error)
            }
        }
        return try result?.get()
    }

    func stop() {
        lock.withLock { http }?.stop()
        single?.stop()
        elected?.stop()
    }
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
    let status = cCall { port = Int32(try Handles.get(handle, CServer.self, "server").port) }
    return status == HULYNET_OK ? port : status
}

@_cdecl("hulynet_server_stats_get")
public func hulynet_server_stats_get(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<hulynet_server_stats>?) -> Int32 {
    cCall {
        let server = try Handles.get(handle, CServer.self, "server").server
        guard let out else { throw CFailure.invalid("out is NULL") }
        let stats = server?.stats() ?? .empty
        out.pointee = hulynet_server_stats(clients: Int64(stats.clients), agents: Int64(stats.agents),
                                           containers: Int64(stats.containers), requests: Int64(stats.requests),
                                           malformed: Int64(stats.malformed))
    }
}

@_cdecl("hulynet_server_destroy")
public func hulynet_server_destroy(_ handle: OpaquePointer?) {
    Handles.take(handle, CServer.self)?.stop()
}

@_cdecl("hulynet_server_start_with")
public func hulynet_server_start_with(_ host: UnsafePointer<CChar>?, _ port: Int32, _ timeouts: UnsafePointer<hulynet_timeouts>?,
                                      _ election: UnsafePointer<hulynet_election_options>?,
                                      _ security: UnsafePointer<hulynet_security>?,
                                      _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let host = try cHost(host, "host")
        var server = NetworkServer.Configuration(host: host == "*" ? "0.0.0.0" : host, port: try cPort(port, allowZero: election == nil),
                                                 timeouts: try cTimeouts(timeouts), logger: CLogSink.logger("hulynet.server"))
        if let security = try cSecurity(security) {
            guard let secret = security.secretKey else { throw CFailure.invalid("security->secret_key is NULL: a server needs its key") }
            server.security = ServerSecurity(keys: secret, allowListPath: security.allowListPath)
        }
        guard let election else {
            let single: NetworkServer
            do { single = try NetworkServer(server) } catch { throw CFailure(error) }
            out.pointee = Handles.make(CServer(single))
            return
        }
        // Only the fields the caller's version of the struct has are read.
        let size = StructLayout.size(election.pointee.size)
        guard size >= MemoryLayout<hulynet_election_options>.offset(of: \.advertise)! + MemoryLayout<UnsafePointer<CChar>?>.size,
              size <= 1 << 16 else {
            throw CFailure.invalid("election->size \(size) is not sizeof(hulynet_election_options)")
        }
        let value = election.pointee
        let etcd = try cString(value.etcd, "election->etcd")
        let key = value.key == nil ? "hulynet/leader" : try cString(value.key, "election->key")
        guard (0...300_000).contains(value.lease_ttl_ms) else {
            throw CFailure.invalid("election->lease_ttl_ms \(value.lease_ttl_ms) is out of range (0 for 3000, 1000 to 300000)")
        }
        let advertise = value.advertise == nil ? nil : try cString(value.advertise, "election->advertise")
        let configuration = ElectedCoordinator.Configuration(
            server: server, etcd: etcd.split(separator: ",").map(String.init), key: key,
            election: .init(ttlMs: value.lease_ttl_ms == 0 ? 3000 : Int64(value.lease_ttl_ms)), advertisedAddress: advertise)
        let elected: ElectedCoordinator
        do { elected = try ElectedCoordinator(configuration) } catch { throw CFailure(error) }
        out.pointee = Handles.make(CServer(elected))
    }
}

/// A `hulynet_security`, read as far as the caller's size covers.
struct CSecurity {
    var secretKey: CurveKeyPair?
    var serverKey: String?
    var allowListPath: String?
}

func cSecurity(_ pointer: UnsafePointer<hulynet_security>?) throws(CFailure) -> CSecurity? {
    guard let pointer else { return nil }
    let size = StructLayout.size(pointer.pointee.size)
    guard size >= MemoryLayout<hulynet_security>.offset(of: \.allow_list_path)! + MemoryLayout<UnsafePointer<CChar>?>.size,
          size <= 1 << 16 else {
        throw CFailure.invalid("security->size \(size) is not sizeof(hulynet_security)")
    }
    let value = pointer.pointee
    var security = CSecurity()
    if value.secret_key != nil {
        let text = try cString(value.secret_key, "security->secret_key")
        do { security.secretKey = try CurveKeyPair(secretKey: text) } catch {
            throw CFailure.invalid("security->secret_key: \(error.description)")
        }
    }
    if value.server_key != nil {
        let text = try cString(value.server_key, "security->server_key")
        guard Curve.isKey(text) else { throw CFailure.invalid("security->server_key: not a Z85 CURVE key (40 characters)") }
        security.serverKey = text
    }
    if value.allow_list_path != nil { security.allowListPath = try cString(value.allow_list_path, "security->allow_list_path") }
    return security
}

@_cdecl("hulynet_curve_keypair")
public func hulynet_curve_keypair(_ publicKey: UnsafeMutablePointer<CChar>?, _ secretKey: UnsafeMutablePointer<CChar>?) -> Int32 {
    cCall {
        guard let publicKey, let secretKey else { throw CFailure.invalid("public_key and secret_key need 41 bytes each, not NULL") }
        let keys: CurveKeyPair
        do { keys = try CurveKeyPair.generate() } catch { throw CFailure(status: HULYNET_EINTERNAL, message: "\(error)") }
        for (text, into) in [(keys.publicKey, publicKey), (keys.secretKey, secretKey)] {
            let bytes = Array(text.utf8)
            for (index, byte) in bytes.enumerated() { into[index] = CChar(bitPattern: byte) }
            into[bytes.count] = 0
        }
    }
}

@_cdecl("hulynet_server_role")
public func hulynet_server_role(_ handle: OpaquePointer?) -> Int32 {
    var role: Int32 = 0
    let status = cCall {
        let server = try Handles.get(handle, CServer.self, "server")
        switch server.elected?.role {
        case nil, .leader?: role = HULYNET_ROLE_LEADER
        case .standby?: role = HULYNET_ROLE_STANDBY
        case .stopped?: role = HULYNET_ROLE_STOPPED
        }
    }
    return status == HULYNET_OK ? role : status
}

@_cdecl("hulynet_server_health")
public func hulynet_server_health(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        let server = try Handles.get(handle, CServer.self, "server")
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let json = server.elected?.health().json ?? .object(["status": "serving", "role": "single"])
        out.pointee = newCString(String(decoding: json.serialized(), as: UTF8.self))
    }
}

// MARK: - Metrics and health

@_cdecl("hulynet_server_metrics")
public func hulynet_server_metrics(_ handle: OpaquePointer?, _ textOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        guard let textOut else { throw CFailure.invalid("text_out is NULL") }
        textOut.pointee = nil
        let server = try Handles.get(handle, CServer.self, "server")
        guard let text = newCString(String(decoding: server.metricsBytes, as: UTF8.self)) else { throw CFailure(status: HULYNET_EINTERNAL, message: "out of memory") }
        textOut.pointee = text
    }
}

@_cdecl("hulynet_server_serve_metrics")
public func hulynet_server_serve_metrics(_ handle: OpaquePointer?, _ host: UnsafePointer<CChar>?, _ port: Int32,
                                         _ portOut: UnsafeMutablePointer<Int32>?) -> Int32 {
    cCall {
        let cServer = try Handles.get(handle, CServer.self, "server")
        let host = host == nil ? "127.0.0.1" : try cHost(host, "host")
        let port = try cPort(port)
        let started: MetricsHTTPServer?
        do {
            started = try cServer.serveMetrics { () throws(NetworkError) in
                try MetricsHTTPServer(host: host, port: port, logger: CLogSink.logger("hulynet.metrics"),
                                      metrics: { [weak cServer] in cServer?.metricsBytes ?? [] },
                                      health: { [weak cServer] in cServer?.health ?? .stopped })
            }
        } catch {
            throw CFailure(error)
        }
        guard let started else { throw CFailure.invalid("the server already serves its metrics") }
        portOut?.pointee = Int32(started.port)
    }
}
