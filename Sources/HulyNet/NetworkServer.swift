import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging
import Tracing

/// The network coordinator on a ZeroMQ ROUTER socket: agents register with it, clients ask it for
/// containers and send requests through it.
///
/// It runs on a thread of its own; the methods here may be called from any thread.
public final class NetworkServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var timeouts: Timeouts
        public var inFlightLimit: Int
        /// See `PeerLimits`.
        public var maxMessageBytes: Int
        public var handshakeTimeoutMs: Int
        public var maxClients: Int
        public var logger: Logger
        /// When set, the coordinator serves only while this lease holds (see `ElectedCoordinator`).
        public var lease: ServingLease?
        /// CURVE encryption and the allow list of client keys (docs/SECURITY.md); nil: the
        /// reference's plain wire.
        public var security: ServerSecurity?

        public init(host: String = "0.0.0.0", port: Int = 3737, timeouts: Timeouts = .reference,
                    inFlightLimit: Int = defaultInFlightLimit, maxMessageBytes: Int = defaultMaxMessageBytes,
                    handshakeTimeoutMs: Int = defaultHandshakeTimeoutMs, maxClients: Int = defaultMaxClients,
                    logger: Logger = Logger(label: "hulynet.server")) {
            self.host = host
            self.port = port
            self.timeouts = timeouts
            self.inFlightLimit = inFlightLimit
            self.maxMessageBytes = maxMessageBytes
            self.handshakeTimeoutMs = handshakeTimeoutMs
            self.maxClients = maxClients
            self.logger = logger
        }

        public var limits: PeerLimits {
            PeerLimits(maxMessageBytes: maxMessageBytes, handshakeTimeoutMs: handshakeTimeoutMs, maxClients: maxClients)
        }

        /// Throws `NetworkError.invalid` naming the first setting out of range.
        public func validate() throws(NetworkError) {
            try checkHost(host)
            try checkPort(port, allowZero: true)
            try timeouts.check()
            try checkRange(inFlightLimit, 1...1_000_000, "in-flight limit")
            try limits.validate()
            if let metricsPort {
                try checkHost(metricsHost, "metrics host")
                try checkPort(metricsPort, allowZero: true, "metrics port")
            }
        }

        // MARK: Observability (docs/OBSERVABILITY.md)

        /// Where this server records its metrics: a registry of its own unless one is given
        /// (share one to add several servers' counts up); nil records nothing.
        public var metrics: MetricsRegistry? = MetricsRegistry()
        /// When set, `GET /metrics` and `GET /health` are served over HTTP on this port (0 picks
        /// one; `NetworkServer.metricsPort` tells which) of `metricsHost`.
        public var metricsPort: Int?
        public var metricsHost = "127.0.0.1"
        /// What `/health` reports; nil: serving (role "single") until the server stops. A
        /// coordinator that may stand by gives its own (`HealthStatus.standby`).
        public var health: (@Sendable () -> HealthStatus)?
    }

    public struct Stats: Sendable, Equatable {
        public var clients: Int
        public var agents: Int
        public var containers: Int
        public var requests: Int
        public var malformed: Int
        /// On a secured server: connections whose key the allow list refused, and requests told
        /// to retry because their key's rate limit was reached.
        public var refusedKeys = 0
        public var rateLimited = 0

        /// Nothing held (a server stopped, or standing by).
        public static let empty = Stats(clients: 0, agents: 0, containers: 0, requests: 0, malformed: 0)
    }

    public let configuration: Configuration
    /// The port bound (the one asked for, or the one picked when 0 was asked for).
    public let port: Int
    /// This run's server id, sent in every hello answer.
    public let serverId: String

    private let loop: IOLoop
    private let shell: CoordinatorShell
    /// A context of its own: its I/O thread serves only the coordinator, and stopping it frees
    /// the port before `stop` returns.
    private let context: ZMQContext
    private let stopped = Lock()
    private var isStopped = false
    /// The HTTP endpoint of `/metrics` and `/health`, when `configuration.metricsPort` is set.
    public private(set) var metricsServer: MetricsHTTPServer? // set once, in init
    /// The port `/metrics` is served on (nil: not served).
    public var metricsPort: Int? { metricsServer?.port }

    /// Binds and starts serving. Throws `NetworkError.invalid` for a setting out of range and
    /// `NetworkError.bindFailed` when the address cannot be bound (a port in use, say).
    public init(_ configuration: Configuration = Configuration()) throws(NetworkError) {
        try configuration.validate()
        self.configuration = configuration
        let loop = IOLoop(name: "hulynet-server")
        let context = ZMQContext()
        loop.start()
        let result: Result<CoordinatorShell, any Error> = loop.sync {
            Result { try CoordinatorShell(loop: loop, configuration: configuration, context: context) }
        } ?? .failure(NetworkError.closed)
        switch result {
        case .success(let shell):
            self.shell = shell
        case .failure(let error):
            loop.stop()
            context.terminate()
            throw NetworkError.bindFailed("\(configuration.host):\(configuration.port): \(error)")
        }
        self.context = context
        self.loop = loop
        self.port = shell.rpc.port
        self.serverId = shell.rpc.serverId
        if let metricsPort = configuration.metricsPort {
            do {
                metricsServer = try MetricsHTTPServer(
                    host: configuration.metricsHost, port: metricsPort, logger: configuration.logger,
                    metrics: { [weak self] in self?.configuration.metrics?.prometheusBytes() ?? [] },
                    health: { [weak self] in self?.health() ?? .stopped })
            } catch {
                stop()
                throw error
            }
        }
    }

    /// What `/health` reports now: `configuration.health`'s, or serving until stopped.
    public func health() -> HealthStatus {
        if let health = configuration.health { return health() }
        return stopped.withLock { isStopped } ? .stopped : .serving(role: "single")
    }

    /// This server's metrics in the Prometheus text format ("" when it records none).
    public func metricsText() -> String { configuration.metrics?.prometheusText() ?? "" }

    /// Counts of what the coordinator holds now.
    public func stats() -> Stats {
        loop.sync { [shell] in
            Stats(clients: shell.rpc.clientCount, agents: shell.coordinator.agentCount,
                  containers: shell.coordinator.containerCount, requests: shell.rpc.stats.requests,
                  malformed: shell.rpc.stats.malformed, refusedKeys: shell.zap?.refused ?? 0,
                  rateLimited: shell.rpc.stats.rateLimited)
        } ?? .empty
    }

    /// Stops serving and closes the socket; idempotent.
    public func stop() {
        let first = stopped.withLock { () -> Bool in
            defer { isStopped = true }
            return !isStopped
        }
        guard first else { return }
        metricsServer?.stop()
        loop.executeUnchecked { [shell] in shell.close() }
        if loop.inLoop {
            // From the server's own thread (a log callback): the socket closes once this returns.
            loop.stop()
            DispatchQueue.global().async { [context] in context.terminate() }
        } else {
            loop.stop()
            context.terminate()
        }
    }

    deinit { stop() }
}

/// The coordinator's I/O shell: feeds the `Coordinator` with what the RPC server receives and
/// carries out its directives. Confined to the server's loop thread.
final class CoordinatorShell: RPCServerDelegate {
    let rpc: RPCServer
    let coordinator: Coordinator
    let logger: Logger
    @exclusivity(unchecked) private var directives: [CoordinatorDirective] = [] // loop-confined
    private var tickTimer: IOLoop.TimerID?
    private(set) var zap: ZAPHandler?
    /// The process's tracer when one was bootstrapped (nil: no spans, no cost).
    private let tracer = Traces.tracer
    /// Spans of requests not answered yet, with when they started.
    @exclusivity(unchecked) private var spans: [RequestToken: (span: any Span, started: Int64)] = [:] // loop-confined
    private var metrics: NetworkMetrics?
    private let loop: IOLoop

    private let configurationRequestMs: Int64

    init(loop: IOLoop, configuration: NetworkServer.Configuration, context: ZMQContext) throws {
        self.loop = loop
        configurationRequestMs = configuration.timeouts.requestMs
        logger = configuration.logger
        // A coordinator serving under a lease was elected: it takes over a network that ran before.
        coordinator = Coordinator(timeouts: configuration.timeouts, startedAt: MonotonicClock.nowMs(),
                                  takesOver: configuration.lease != nil)
        if let security = configuration.security, let path = security.allowListPath {
            // Bound before the server socket, so that no client is admitted unasked.
            zap = try ZAPHandler(loop: loop, context: context, allowListPath: path, logger: configuration.logger)
        }
        rpc = try RPCServer(loop: loop, host: configuration.host, port: configuration.port,
                            timeouts: configuration.timeouts, limits: configuration.limits, logger: configuration.logger,
                            context: context, curve: configuration.security?.keys,
                            zapDomain: configuration.security?.allowListPath == nil ? nil : ZAPHandler.domain)
        rpc.inFlightLimit = configuration.inFlightLimit
        rpc.delegate = self
        if let zap {
            rpc.admitsKey = { [unowned zap] key in zap.entry(for: key) != nil }
            zap.onReload = { [unowned self] old, new in applyAllowList(old: old, new: new) }
        }
        if let lease = configuration.lease {
            rpc.lease = lease
            rpc.onFenced = { [logger] in
                logger.warning("the leadership lease lapsed: stopped serving (closed the port)")
            }
        }
        tickTimer = loop.every(milliseconds: Int(configuration.timeouts.tickMs)) { [unowned self] in
            let now = MonotonicClock.nowMs()
            guard configuration.lease?.holds(now: now) != false else { return }
            coordinator.tick(now: now, into: &directives)
            run()
            trimAfterBurst(now: now)
        }
        if let metrics = configuration.metrics?.networkMetrics() {
            self.metrics = metrics
            rpc.machine.metrics = metrics
            coordinator.metrics = metrics
            zap?.onRefused = { metrics.refused(.keyNotAllowed) }
        }
        logger.info("network coordinator \(rpc.serverId) listening on \(configuration.host):\(rpc.port)")
        if let security = configuration.security {
            logger.info("secured with CURVE (public key \(security.keys.publicKey)); \(security.allowListPath.map { "clients admitted from \($0)" } ?? "any client knowing the public key is admitted")")
        }
        logger.info("peer limits: frames up to \(configuration.maxMessageBytes) bytes, handshake within \(configuration.handshakeTimeoutMs) ms, at most \(rpc.connectionLimit) connections")
    }

    func close() {
        if let tickTimer { loop.cancel(tickTimer) }
        rpc.close()
        zap?.close()
    }

    private var messagesAtLastTrim = 0
    private var messagesSecondAgo = 0
    private var secondStarted: Int64 = 0

    /// After a burst of messages (a storm of bad input, a spike of load), once the server has
    /// been quiet for a second, gives the freed heap back to the system: glibc keeps freed
    /// memory in its arenas otherwise (measured after a 50,000-message storm: 3-5 MiB, and 20 MiB
    /// more without `ProcessMemory.mapLargeAllocations`). The threshold is low so that the tail
    /// of a burst, after a pause inside it that already trimmed, is trimmed too; a quiet server
    /// does it at most once per 1,000 messages.
    private func trimAfterBurst(now: Int64) {
        let stats = rpc.stats
        let messages = stats.requests + stats.hellos + stats.pings + stats.malformed + stats.responses
        guard now - secondStarted >= 1000 else { return }
        let lastSecond = messages - messagesSecondAgo
        messagesSecondAgo = messages
        secondStarted = now
        guard messages - messagesAtLastTrim >= 1000, lastSecond < 100 else { return }
        messagesAtLastTrim = messages
        ProcessMemory.releaseFreed()
    }

    private func run() {
        while !directives.isEmpty {
            let batch = directives
            directives.removeAll(keepingCapacity: true)
            for directive in batch { carryOut(directive) }
        }
    }

    private func carryOut(_ directive: CoordinatorDirective) {
        switch directive {
        case .reply(let token, let value):
            if !spans.isEmpty { endSpan(token, nil) }
            rpc.reply(token, value)
        case .replyRaw(let token, let payload):
            if !spans.isEmpty { endSpan(token, nil) }
            rpc.replyRaw(token, payload)
        case .fail(let token, let error):
            if !spans.isEmpty { endSpan(token, error) }
            rpc.fail(token, error)
        case .call(let client, let id, let payload):
            if !rpc.call(client, id: id, payload: payload) {
                coordinator.callFailed(id, RemoteError("client \(client) is not connected", code: .agentGone),
                                       now: MonotonicClock.nowMs(), into: &directives)
            }
        case .broadcast(let event):
            metrics?.eventsSent.increment(by: Int64(rpc.clientCount))
            rpc.broadcast(payload: event.json.serialized())
        case .event(let client, let event):
            rpc.event(client, payload: event.json.serialized())
        case .log(let level, let message, let fields):
            // Ids and kinds in these lines come from clients: escaped and bounded, as metadata.
            var metadata: Logger.Metadata = [:]
            for field in fields { metadata[field.name] = "\(LogSummary.escaped(field.value.utf8, limit: 256))" }
            logger.log(level: level.swiftLogLevel, "\(LogSummary.escaped(message.utf8, limit: 1024))", metadata: metadata)
        }
    }

    /// An allow list read again takes effect for the clients connected now too: a key removed
    /// has its sessions cut at once; a key whose rules changed has the new rules.
    private func applyAllowList(old: AllowList, new: AllowList) {
        for (key, entry) in old.entries where new.entry(for: key) != entry {
            for client in rpc.clients(withKey: key) {
                guard let fresh = new.entry(for: key) else {
                    logger.notice("key \(entry.name) (\(Curve.fingerprint(key))) was removed from the allow list: client \(client) cut")
                    rpc.cut(client)
                    continue
                }
                applyPolicy(fresh.policy, to: client)
            }
        }
    }

    private func applyPolicy(_ policy: AccessPolicy, to client: ClientUUID) {
        coordinator.setPolicy(policy.isUnrestricted ? nil : policy, for: client)
        rpc.setRateLimit(policy.requestsPerSecond.map { RateLimit(perSecond: $0, burst: policy.burst, now: MonotonicClock.nowMs()) },
                         for: client)
    }

    func rpcServer(_ server: RPCServer, clientConnected client: ClientUUID) {
        coordinator.clientConnected(client)
        // On a secured network the key's rules apply from its hello on (read at each hello: an
        // allow list changed since applies to the next connection).
        if zap != nil { coordinator.setPrincipal(rpc.principal(of: client), for: client) }
        if let zap, let key = rpc.principal(of: client), let entry = zap.entry(for: key), !entry.policy.isUnrestricted {
            applyPolicy(entry.policy, to: client)
        }
    }

    func rpcServer(_ server: RPCServer, clientGone client: ClientUUID, timedOut: Bool) {
        coordinator.clientGone(client, timedOut: timedOut, now: MonotonicClock.nowMs(), into: &directives)
        run()
    }

    func rpcServer(_ server: RPCServer, ping client: ClientUUID) {
        coordinator.ping(client, now: MonotonicClock.nowMs())
    }

    func rpcServer(_ server: RPCServer, request: IncomingRequest) {
        let now = MonotonicClock.nowMs()
        if request.method == Method.sendContainer {
            // The hot path: the payload was validated whole on arrival; read only the target and
            // pass the bytes on (the agent checks the rest).
            guard let first = JSONScanner.firstArrayElement(request.payload, in: request.paramsRange),
                  let target = JSONScanner.stringValue(request.payload, in: first) else {
                rpc.fail(request.token, RemoteError("cs: params must be [target, operation, data]", code: .invalid))
                return
            }
            var trace: [String: String]?
            if let tracer {
                trace = startSpan(tracer, "hulynet.coordinator.request", token: request.token, now: now,
                                  attributes: [("hulynet.container", target), ("hulynet.client", request.client)])
            }
            coordinator.forward(client: request.client, token: request.token, target: target, rawParams: request.payload[request.paramsRange],
                                origin: request.requestId, trace: trace, now: now, into: &directives)
        } else {
            let params: JSONValue
            do {
                params = try request.params()
            } catch {
                rpc.fail(request.token, RemoteError("invalid params: \(error.message)", code: .invalid))
                return
            }
            var trace: [String: String]?
            if let tracer, request.method == Method.getContainer {
                var attributes = [("hulynet.kind", params.member("kind")?.stringValue ?? ""), ("hulynet.client", request.client)]
                if let uuid = params.member("request")?.member("uuid")?.stringValue { attributes.append(("hulynet.container", uuid)) }
                trace = startSpan(tracer, "hulynet.coordinator.get", token: request.token, now: now, attributes: attributes)
            }
            coordinator.handle(client: request.client, token: request.token, method: request.method,
                               params: params, trace: trace, now: now, into: &directives)
        }
        run()
    }

    /// Starts a span for a request until its answer; returns its propagation headers for the agent.
    private func startSpan(_ tracer: any Tracer, _ name: String, token: RequestToken, now: Int64,
                           attributes: [(String, String)]) -> [String: String]? {
        let span = Traces.start(tracer, name, kind: .server, attributes: attributes)
        spans[token] = (span, now)
        // A request never answered (its client went) must not keep its span for ever.
        if spans.count > 10_000 || now - lastSpanSweep > 10_000 { sweepSpans(now: now) }
        return Traces.headers(of: span, tracer)
    }

    private var lastSpanSweep: Int64 = 0

    private func sweepSpans(now: Int64) {
        lastSpanSweep = now
        for (token, entry) in spans where now - entry.started > 2 * configurationRequestMs {
            spans.removeValue(forKey: token)
            Traces.end(entry.span, error: RemoteError("no answer", code: .timeout))
        }
    }

    private func endSpan(_ token: RequestToken, _ error: RemoteError?) {
        guard let entry = spans.removeValue(forKey: token) else { return }
        Traces.end(entry.span, error: error)
    }

    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>) {
        let now = MonotonicClock.nowMs()
        switch result {
        case .success(let payload):
            coordinator.callSucceeded(id, payload: payload, now: now, into: &directives)
        case .failure(let error):
            coordinator.callFailed(id, error, now: now, into: &directives)
        }
        run()
    }
}

extension LogLevel {
    var swiftLogLevel: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}

/// Errors of hulynet's network objects.
public enum NetworkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The address could not be bound (in use, not local, malformed).
    case bindFailed(String)
    /// The other side answered the request with an error: a container's own, or the network's
    /// (with its code).
    case remote(RemoteError)
    /// No answer within the time allowed.
    case timeout(String)
    /// The object was closed before or while the call ran.
    case closed
    /// An argument or a value received is not what the protocol allows.
    case invalid(String)

    public var description: String {
        switch self {
        case .bindFailed(let text): "cannot bind \(text)"
        case .remote(let error): error.message
        case .timeout(let text): "timed out: \(text)"
        case .closed: "closed"
        case .invalid(let text): text
        }
    }

    /// The network's own failure this is, if it is one.
    public var code: NetworkErrorCode? {
        switch self {
        case .remote(let error): error.code
        case .timeout: .timeout
        case .invalid: .invalid
        case .bindFailed, .closed: nil
        }
    }

    /// A request's failure as callers see it.
    init(_ failure: RPCFailure) {
        switch failure {
        case .remote(let error): self = .remote(error)
        case .timeout(let text): self = .timeout(text)
        case .closed: self = .closed
        }
    }
}
