import CHulyNet
import HulyNet
import HulyNetCore
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Version, errors, memory

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

// MARK: - Logging

/// The C log callback, shared by every logger the C API makes.
enum CLogSink {
    struct Target: @unchecked Sendable {
        let fn: hulynet_log_fn?
        let user: UnsafeMutableRawPointer?
        let minLevel: Int32
    }

    private static let lock = Lock()
    nonisolated(unsafe) private static var target = Target(fn: nil, user: nil, minLevel: HULYNET_LOG_WARNING)

    static func set(_ new: Target) { lock.withLock { target = new } }
    static var current: Target { lock.withLock { target } }

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
        let target = CLogSink.current
        guard level >= target.minLevel else { return }
        let text = "[\(label)] \(event.message)"
        if let fn = target.fn {
            text.withCString { pointer in CallbackThread.run { fn(target.user, level, pointer) } }
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
    cCall {
        guard (HULYNET_LOG_TRACE...HULYNET_LOG_CRITICAL).contains(minLevel) else {
            throw CFailure.invalid("min_level \(minLevel) is not a HULYNET_LOG_* level")
        }
        CLogSink.set(.init(fn: fn, user: user, minLevel: fn == nil ? max(minLevel, HULYNET_LOG_WARNING) : minLevel))
    }
}

// MARK: - Timeouts

func cTimeouts(_ pointer: UnsafePointer<hulynet_timeouts>?) throws(CFailure) -> Timeouts {
    var timeouts = Timeouts.reference
    guard let value = pointer?.pointee else { return timeouts }
    for (field, name) in [(value.alive_ms, "alive_ms"), (value.unused_container_ms, "unused_container_ms"),
                          (value.ping_interval_ms, "ping_interval_ms"), (value.request_ms, "request_ms")] {
        guard field >= 0, field <= Timeouts.maxMs else { throw .invalid("timeouts.\(name) \(field) is out of range (0 to \(Timeouts.maxMs))") }
    }
    if value.alive_ms > 0 { timeouts.aliveMs = value.alive_ms }
    if value.unused_container_ms > 0 { timeouts.unusedContainerMs = value.unused_container_ms }
    if value.ping_interval_ms > 0 { timeouts.pingIntervalMs = value.ping_interval_ms }
    if value.request_ms > 0 { timeouts.requestMs = value.request_ms }
    return timeouts
}

func cPort(_ port: Int32, allowZero: Bool = true) throws(CFailure) -> Int {
    guard (allowZero ? 0 : 1)...65535 ~= port else { throw .invalid("port \(port) is out of range") }
    return Int(port)
}

// MARK: - Server

/// A coordinator of the C API: one on its own, or one of several elected through etcd (which
/// serves only while it leads).
final class CServer {
    private let single: NetworkServer?
    let elected: ElectedCoordinator?
    let port: Int
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

    func stop() {
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
        let size = election.pointee.size
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
    let size = pointer.pointee.size
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
