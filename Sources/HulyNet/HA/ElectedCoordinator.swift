import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// A network coordinator among several that stand in for each other: each campaigns for
/// leadership through etcd (`ElectionMachine` holds the rules), and only the leader binds its
/// port and serves. A standby binds nothing, so clients given the list of coordinators
/// (`NetworkClient(addresses:)`) find the leader by trying each in turn, and a load balancer
/// finds it by `health()`.
///
/// A leader that cannot renew its lease stops serving before the lease can expire (its server
/// checks the deadline before it handles each message), so two coordinators never serve at once;
/// it then stands by and campaigns again. A new leader starts with an empty state and learns the
/// agents and containers from their re-registration, as after a restart: clients and agents
/// restore their state on it and resend their pending requests, which run once.
///
/// The election runs on a thread of its own; the methods here may be called from any thread.
public final class ElectedCoordinator: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The coordinator to run while leading. Its port must be fixed (clients list it).
        public var server: NetworkServer.Configuration
        /// etcd's client URLs (`http://host:port`), tried in turn.
        public var etcd: [String]
        /// The key the coordinators campaign for: one network, one key.
        public var key: String
        public var election: ElectionMachine.Settings
        /// The address standbys and operators see for this coordinator while it leads (default:
        /// the server's host and port, or the machine's host name for a wildcard host).
        public var advertisedAddress: String?

        public init(server: NetworkServer.Configuration, etcd: [String], key: String = "hulynet/leader",
                    election: ElectionMachine.Settings = ElectionMachine.Settings(), advertisedAddress: String? = nil) {
            self.server = server
            self.etcd = etcd
            self.key = key
            self.election = election
            self.advertisedAddress = advertisedAddress
        }

        /// Throws `NetworkError.invalid` naming the first setting out of range.
        public func validate() throws(NetworkError) {
            try server.validate()
            guard server.port != 0 else {
                throw NetworkError.invalid("a coordinator elected through etcd needs a fixed port: clients list it")
            }
            guard !key.isEmpty, key.utf8.count <= 1024 else { throw NetworkError.invalid("etcd key must be 1 to 1024 bytes") }
            do { try election.check() } catch { throw NetworkError.invalid(error.description) }
            _ = try EtcdClient(urls: etcd, timeoutMs: Int(election.callTimeoutMs))
        }
    }

    public enum Role: Sendable, Equatable {
        /// Not serving; `leader` is the address the leadership key names (nil: none, or unknown).
        case standby(leader: String?)
        case leader(serverId: String)
        case stopped
    }

    public let configuration: Configuration
    public let advertisedAddress: String
    private let logger: Logger
    private let etcd: EtcdClient
    private let lease = ServingLease()
    private let onRoleChange: (@Sendable (Role, String) -> Void)?
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    private let state = Lock()
    private var currentRole: Role = .standby(leader: nil)
    private var currentServer: NetworkServer?
    private var lastReason = "starting"
    private var lastEtcdError: String?
    private var stopRequested = false
    /// `/metrics` and `/health` when the server configuration asks for them: one endpoint that
    /// outlives the servers of each term, so that a standby answers 503 with why.
    public private(set) var metricsServer: MetricsHTTPServer?

    /// Starts campaigning. `onRoleChange` is called on the election's thread with the new role
    /// and why, each time it changes. Throws `NetworkError.invalid` for a setting out of range.
    public init(_ configuration: Configuration, onRoleChange: (@Sendable (Role, String) -> Void)? = nil) throws(NetworkError) {
        try configuration.validate()
        self.configuration = configuration
        logger = configuration.server.logger
        etcd = try EtcdClient(urls: configuration.etcd, timeoutMs: Int(configuration.election.callTimeoutMs))
        self.onRoleChange = onRoleChange
        advertisedAddress = configuration.advertisedAddress ?? Self.defaultAddress(configuration.server)
        if let port = configuration.server.metricsPort {
            let registry = configuration.server.metrics
            do {
                metricsServer = try MetricsHTTPServer(
                    host: configuration.server.metricsHost, port: port, logger: configuration.server.logger,
                    metrics: { registry?.prometheusBytes() ?? [] },
                    health: { [weak self] in self?.healthStatus() ?? .stopped })
            } catch {
                throw error
            }
        }
        let thread = DispatchQueue(label: "hulynet-election")
        thread.async { [self] in
            runElection()
            finished.signal()
        }
    }

    deinit { stop() }

    public var role: Role { state.withLock { currentRole } }
    /// The coordinator serving now, while this one leads.
    public var server: NetworkServer? { state.withLock { currentServer } }
    /// Why the role last changed (a standby's reason for not serving).
    public var reason: String { state.withLock { lastReason } }

    /// The same as a `HealthStatus` (`/health`: 200 while leading, 503 with why otherwise).
    public func healthStatus() -> HealthStatus {
        let (serving, json) = health()
        var details: [String: String] = [:]
        for case let (key, .string(value)) in json.objectValue ?? [:] where key != "status" && key != "role" {
            details[key] = value
        }
        return HealthStatus(serving: serving, status: json.member("status")?.stringValue ?? "stopped",
                            role: json.member("role")?.stringValue ?? "stopped", details: details)
    }

    /// What a health check sees: serving or not, and a JSON object saying the role and why.
    public func health() -> (serving: Bool, json: JSONValue) {
        state.withLock {
            var fields: [String: JSONValue] = ["reason": .string(lastReason)]
            switch currentRole {
            case .leader(let serverId):
                fields["status"] = "serving"
                fields["role"] = "leader"
                fields["server"] = .string(serverId)
            case .standby(let leader):
                fields["status"] = "standby"
                fields["role"] = "standby"
                fields["leader"] = leader.map(JSONValue.string) ?? .null
            case .stopped:
                fields["status"] = "stopped"
                fields["role"] = "stopped"
            }
            if let lastEtcdError { fields["etcd_error"] = .string(lastEtcdError) }
            let serving = if case .leader = currentRole { true } else { false }
            return (serving, .object(fields))
        }
    }

    /// Stops serving, gives the leadership up at once (so a standby need not wait for the
    /// lease to expire) and ends the election; idempotent. Returns within about an etcd call's
    /// timeout.
    public func stop() {
        let first = state.withLock { () -> Bool in
            defer { stopRequested = true }
            return !stopRequested
        }
        guard first else { return }
        wake.signal()
        _ = finished.wait(timeout: .now() + .milliseconds(Int(configuration.election.callTimeoutMs) * 3 + 1000))
        metricsServer?.stop()
    }

    // MARK: - The election's thread

    private func runElection() {
        var machine = ElectionMachine(settings: configuration.election)
        logger.info("campaigning for \(configuration.key) through etcd \(configuration.etcd.joined(separator: ",")) as \(advertisedAddress)")
        while true {
            var now = MonotonicClock.nowMs()
            apply(machine.tick(now: now), to: &machine)
            if state.withLock({ stopRequested }), !machine.stopping { apply(machine.stop(), to: &machine) }
            let step = machine.nextStep(now: now)
            if case .wait(let until) = step {
                if machine.stopping { break } // the lease given up (or none held)
                // Woken early by `stop`; at least once a second to look at the clock anyway.
                _ = wake.wait(timeout: .now() + .milliseconds(Int(max(1, min(until, now + 1000) - now))))
                continue
            }
            now = MonotonicClock.nowMs()
            do throws(EtcdError) {
                switch step {
                case .grantLease(let ttl):
                    let granted = try etcd.grantLease(ttlSeconds: ttl)
                    apply(machine.leaseGranted(granted.id, ttlSeconds: granted.ttlSeconds, sentAt: now), to: &machine)
                case .campaign(let leaseId):
                    let outcome = try etcd.campaign(key: configuration.key, value: advertisedAddress, lease: leaseId)
                    apply(machine.campaigned(won: outcome.won, holder: outcome.holder, sentAt: now, now: MonotonicClock.nowMs()),
                          to: &machine)
                case .readKey:
                    apply(machine.keyRead(try etcd.read(key: configuration.key), now: MonotonicClock.nowMs()), to: &machine)
                case .keepAlive(let leaseId):
                    let ttl = try etcd.keepAlive(lease: leaseId)
                    apply(machine.keptAlive(ttlSeconds: ttl, sentAt: now, now: MonotonicClock.nowMs()), to: &machine)
                case .revoke(let leaseId):
                    try etcd.revoke(lease: leaseId)
                    machine.revoked()
                case .wait:
                    break
                }
                state.withLock { lastEtcdError = nil }
            } catch {
                let text = error.description
                let repeated = state.withLock { () -> Bool in
                    defer { lastEtcdError = text }
                    return lastEtcdError == text
                }
                if !repeated { logger.warning("etcd: \(text)") }
                apply(machine.failed(step, now: MonotonicClock.nowMs()), to: &machine)
            }
        }
        setRole(.stopped, "stopped")
        logger.info("left the election for \(configuration.key)")
    }

    private func apply(_ changes: [ElectionMachine.Change], to machine: inout ElectionMachine) {
        for change in changes {
            switch change {
            case .startServing(let until):
                lease.extend(untilMs: until)
                var serverConfiguration = configuration.server
                serverConfiguration.lease = lease
                serverConfiguration.metricsPort = nil // served by this coordinator, across terms
                serverConfiguration.health = { [weak self] in self?.healthStatus() ?? .stopped }
                do {
                    let server = try NetworkServer(serverConfiguration)
                    state.withLock { currentServer = server }
                    setRole(.leader(serverId: server.serverId), "won the election")
                    logger.notice("leading: serving on \(configuration.server.host):\(server.port) as \(advertisedAddress)")
                } catch {
                    lease.revoke()
                    machine.couldNotServe(now: MonotonicClock.nowMs())
                    setRole(.standby(leader: nil), "won the election but could not serve: \(error)")
                    logger.error("won the election but could not serve: \(error); giving the leadership up")
                }
            case .extend(let until):
                lease.extend(untilMs: until)
            case .stopServing(let reason):
                lease.revoke()
                let server = state.withLock { () -> NetworkServer? in
                    defer { currentServer = nil }
                    return currentServer
                }
                server?.stop()
                let why = state.withLock { lastEtcdError }.map { "\(reason) (etcd: \($0))" } ?? reason
                setRole(.standby(leader: nil), why)
                logger.warning("standing by: \(why)")
            case .leaderSeen(let leader):
                if case .leader = role { continue }
                setRole(.standby(leader: leader), leader.map { "\($0) leads" } ?? "nobody leads")
                logger.info("standing by: \(leader.map { "\($0) leads" } ?? "nobody leads")")
            }
        }
    }

    private func setRole(_ role: Role, _ reason: String) {
        state.withLock {
            currentRole = role
            lastReason = reason
        }
        onRoleChange?(role, reason)
    }

    private static func defaultAddress(_ server: NetworkServer.Configuration) -> String {
        guard server.host == "0.0.0.0" || server.host == "*" || server.host.isEmpty else {
            return "\(server.host):\(server.port)"
        }
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        return "\(host):\(server.port)"
    }
}
