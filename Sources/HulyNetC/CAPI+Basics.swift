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
        var text = "[\(label)] \(event.message)"
        // Structured fields (agent, client, container, kind, ...) follow as key=value, in order.
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in fields.keys.sorted() {
            let value = "\(fields[key]!)"
            text += value.contains(" ") || value.isEmpty ? " \(key)=\"\(value)\"" : " \(key)=\(value)"
        }
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

final class CServer {
    let server: NetworkServer
    /// The HTTP endpoint of `hulynet_server_serve_metrics`, stopped with the server.
    private let lock = Lock()
    private var http: MetricsHTTPServer?

    init(_ server: NetworkServer) { self.server = server }

    /// Starts the endpoint; false when one is already running.
    func serveMetrics(start: () throws(NetworkError) -> MetricsHTTPServer) throws(NetworkError) -> MetricsHTTPServer? {
        let result = lock.withLock { () -> Result<MetricsHTTPServer, NetworkError>? in
            guard http == nil, server.metricsServer == nil else { return nil }
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
        server.stop()
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
    Handles.take(handle, CServer.self)?.stop()
}

// MARK: - Metrics and health

@_cdecl("hulynet_server_metrics")
public func hulynet_server_metrics(_ handle: OpaquePointer?, _ textOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        guard let textOut else { throw CFailure.invalid("text_out is NULL") }
        textOut.pointee = nil
        let server = try Handles.get(handle, CServer.self, "server").server
        guard let text = newCString(server.metricsText()) else { throw CFailure(status: HULYNET_EINTERNAL, message: "out of memory") }
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
        let server = cServer.server
        let started: MetricsHTTPServer?
        do {
            started = try cServer.serveMetrics { () throws(NetworkError) in
                try MetricsHTTPServer(host: host, port: port, logger: CLogSink.logger("hulynet.metrics"),
                                      metrics: { [weak server] in server?.configuration.metrics?.prometheusBytes() ?? [] },
                                      health: { [weak server] in server?.health() ?? .stopped })
            }
        } catch {
            throw CFailure(error)
        }
        guard let started else { throw CFailure.invalid("the server already serves its metrics") }
        portOut?.pointee = Int32(started.port)
    }
}
