// The shapes of the huly.net protocol, with their JSON exactly as the reference sends them.
// A JSON null is treated like an absent field everywhere (the reference sends `undefined` as null).

public typealias ContainerUUID = String
public typealias ContainerKind = String
public typealias AgentUUID = String
public typealias ClientUUID = String

/// A protocol value that does not have the shape it should.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension JSONValue {
    /// The member `key` unless it is absent or null.
    @inlinable
    public func member(_ key: String) -> JSONValue? {
        guard case .object(let object) = self, let value = object[key], value != .null else { return nil }
        return value
    }

    func requiredString(_ key: String, in what: String) throws(ProtocolError) -> String {
        guard let value = member(key)?.stringValue else { throw ProtocolError("\(what): '\(key)' must be a string") }
        return value
    }

    func optionalString(_ key: String, in what: String) throws(ProtocolError) -> String? {
        guard let value = member(key) else { return nil }
        guard let string = value.stringValue else { throw ProtocolError("\(what): '\(key)' must be a string") }
        return string
    }

    func optionalStrings(_ key: String, in what: String) throws(ProtocolError) -> [String]? {
        guard let value = member(key) else { return nil }
        guard let array = value.arrayValue else { throw ProtocolError("\(what): '\(key)' must be an array of strings") }
        var strings: [String] = []
        strings.reserveCapacity(array.count)
        for item in array {
            guard let string = item.stringValue else { throw ProtocolError("\(what): '\(key)' must be an array of strings") }
            strings.append(string)
        }
        return strings
    }

    func optionalObject(_ key: String, in what: String) throws(ProtocolError) -> [String: JSONValue]? {
        guard let value = member(key) else { return nil }
        guard let object = value.objectValue else { throw ProtocolError("\(what): '\(key)' must be an object") }
        return object
    }
}

/// How to reach a container: through its agent's endpoint, directly, or only through the coordinator.
public enum EndpointKind: Int, Sendable, Hashable {
    case routed = 0
    case direct = 1
    case noConnection = 2
}

/// An endpoint reference; on the wire a string holding JSON `{host, port, kind, agentId, uuid?}`.
public struct EndpointRef: Sendable, Hashable {
    public var kind: EndpointKind
    public var host: String
    public var port: Int
    public var agentId: AgentUUID
    public var uuid: ContainerUUID?
    /// The endpoint's CURVE public key (Z85) when it is secured: a client connects to it with no
    /// other configuration. Absent otherwise, so the wire is the reference's.
    public var publicKey: String?

    public init(kind: EndpointKind, host: String, port: Int, agentId: AgentUUID, uuid: ContainerUUID? = nil,
                publicKey: String? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.agentId = agentId
        self.uuid = uuid
        self.publicKey = publicKey
    }

    /// The agent's own endpoint (the reference marks it "direct").
    public static func agent(host: String, port: Int, agentId: AgentUUID, publicKey: String? = nil) -> EndpointRef {
        EndpointRef(kind: .direct, host: host, port: port, agentId: agentId, publicKey: publicKey)
    }

    /// An agent that has no endpoint of its own: its containers are reached through the coordinator.
    public static func agentWithoutConnection(_ agentId: AgentUUID) -> EndpointRef {
        EndpointRef(kind: .noConnection, host: "", port: 0, agentId: agentId)
    }

    /// A container reached through its agent's endpoint (or not at all, if the agent has none).
    public static func container(_ uuid: ContainerUUID, onAgent agent: EndpointRef) -> EndpointRef {
        EndpointRef(kind: agent.kind == .noConnection ? .noConnection : .routed,
                    host: agent.host, port: agent.port, agentId: agent.agentId, uuid: uuid, publicKey: agent.publicKey)
    }

    /// A container with its own endpoint.
    public static func direct(host: String, port: Int, container uuid: ContainerUUID, agentId: AgentUUID,
                              publicKey: String? = nil) -> EndpointRef {
        EndpointRef(kind: .direct, host: host, port: port, agentId: agentId, uuid: uuid, publicKey: publicKey)
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "host": .string(host), "port": .number(Double(port)),
            "kind": .number(Double(kind.rawValue)), "agentId": .string(agentId),
        ]
        if let uuid { object["uuid"] = .string(uuid) }
        if let publicKey { object["key"] = .string(publicKey) }
        return .object(object)
    }

    /// The wire form: JSON text, with its keys always in the same order, so that references to
    /// one endpoint compare equal as text.
    public var encoded: String {
        var text: [UInt8] = []
        text.reserveCapacity(128)
        text.append(contentsOf: #"{"kind":"#.utf8)
        text.append(contentsOf: String(kind.rawValue).utf8)
        text.append(contentsOf: #","host":"#.utf8)
        JSONValue.string(host).write(to: &text)
        text.append(contentsOf: #","port":"#.utf8)
        text.append(contentsOf: String(port).utf8)
        text.append(contentsOf: #","agentId":"#.utf8)
        JSONValue.string(agentId).write(to: &text)
        if let uuid {
            text.append(contentsOf: #","uuid":"#.utf8)
            JSONValue.string(uuid).write(to: &text)
        }
        if let publicKey {
            text.append(contentsOf: #","key":"#.utf8)
            JSONValue.string(publicKey).write(to: &text)
        }
        text.append(UInt8(ascii: "}"))
        return String(decoding: text, as: UTF8.self)
    }

    public init(parsing text: String) throws(ProtocolError) {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw ProtocolError("endpoint reference is not JSON: \(error.message)") }
        guard let kindNumber = value.member("kind")?.intValue, let kind = EndpointKind(rawValue: kindNumber) else {
            throw ProtocolError("endpoint reference: 'kind' must be 0, 1 or 2")
        }
        let port = value.member("port")?.intValue ?? 0
        guard (0...65535).contains(port) else { throw ProtocolError("endpoint reference: port \(port) out of range") }
        self.init(kind: kind,
                  host: try value.optionalString("host", in: "endpoint reference") ?? "",
                  port: port,
                  agentId: try value.optionalString("agentId", in: "endpoint reference") ?? "",
                  uuid: try value.optionalString("uuid", in: "endpoint reference"),
                  publicKey: try value.optionalString("key", in: "endpoint reference"))
    }
}

/// A container as the coordinator lists it.
public struct ContainerRecord: Sendable, Hashable {
    public var agentId: AgentUUID
    public var uuid: ContainerUUID
    public var kind: ContainerKind
    /// An endpoint reference (JSON text), or "" when unknown.
    public var endpoint: String
    /// Milliseconds; when the container was last asked for.
    public var lastVisit: Double
    public var extra: [String: JSONValue]?
    public var labels: [String]?

    public init(agentId: AgentUUID, uuid: ContainerUUID, kind: ContainerKind, endpoint: String,
                lastVisit: Double, extra: [String: JSONValue]? = nil, labels: [String]? = nil) {
        self.agentId = agentId
        self.uuid = uuid
        self.kind = kind
        self.endpoint = endpoint
        self.lastVisit = lastVisit
        self.extra = extra
        self.labels = labels
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "agentId": .string(agentId), "uuid": .string(uuid), "kind": .string(kind),
            "endpoint": .string(endpoint), "lastVisit": .number(lastVisit),
        ]
        if let extra { object["extra"] = .object(extra) }
        if let labels { object["labels"] = .array(labels.map { .string($0) }) }
        return .object(object)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let what = "container record"
        guard json.objectValue != nil else { throw ProtocolError("\(what) must be an object") }
        self.init(agentId: try json.optionalString("agentId", in: what) ?? "",
                  uuid: try json.requiredString("uuid", in: what),
                  kind: try json.requiredString("kind", in: what),
                  endpoint: try json.optionalString("endpoint", in: what) ?? "",
                  lastVisit: json.member("lastVisit")?.doubleValue ?? 0,
                  extra: try json.optionalObject("extra", in: what),
                  labels: try json.optionalStrings("labels", in: what))
    }
}

/// What a get-or-start asks for: a container by uuid, or any container of the kind whose labels
/// include these; `extra` is handed to the container's factory.
public struct GetOptions: Sendable, Hashable {
    public var uuid: ContainerUUID?
    public var labels: [String]?
    public var extra: [String: JSONValue]?

    public init(uuid: ContainerUUID? = nil, labels: [String]? = nil, extra: [String: JSONValue]? = nil) {
        self.uuid = uuid
        self.labels = labels
        self.extra = extra
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        if let uuid { object["uuid"] = .string(uuid) }
        if let labels { object["labels"] = .array(labels.map { .string($0) }) }
        if let extra { object["extra"] = .object(extra) }
        return .object(object)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let what = "get options"
        if json == .null { self.init(); return }
        guard json.objectValue != nil else { throw ProtocolError("\(what) must be an object") }
        self.init(uuid: try json.optionalString("uuid", in: what),
                  labels: try json.optionalStrings("labels", in: what),
                  extra: try json.optionalObject("extra", in: what))
    }

    /// True when `labels` (of a container or a start under way) include every label asked for.
    public func labelsMatch(_ labels: [String]?) -> Bool {
        guard let wanted = self.labels, !wanted.isEmpty else { return true }
        guard let labels else { return false }
        return wanted.allSatisfy(labels.contains)
    }
}

public enum NetworkEventKind: Int, Sendable, Hashable {
    case added = 0
    case updated = 1
    case removed = 2
}

/// A change to the network, sent by the coordinator to every client.
public struct NetworkEvent: Sendable, Hashable {
    public struct AgentChange: Sendable, Hashable {
        public var id: AgentUUID
        public var kinds: [ContainerKind]
        public var event: NetworkEventKind
        public init(id: AgentUUID, kinds: [ContainerKind], event: NetworkEventKind) {
            self.id = id
            self.kinds = kinds
            self.event = event
        }
    }

    public struct ContainerChange: Sendable, Hashable {
        public var container: ContainerRecord
        public var event: NetworkEventKind
        public init(container: ContainerRecord, event: NetworkEventKind) {
            self.container = container
            self.event = event
        }
    }

    public var agents: [AgentChange]
    public var containers: [ContainerChange]

    public init(agents: [AgentChange] = [], containers: [ContainerChange] = []) {
        self.agents = agents
        self.containers = containers
    }

    public var isEmpty: Bool { agents.isEmpty && containers.isEmpty }

    public var json: JSONValue {
        .object([
            "agents": .array(agents.map {
                .object(["id": .string($0.id), "kinds": .array($0.kinds.map { .string($0) }),
                         "event": .number(Double($0.event.rawValue))])
            }),
            "containers": .array(containers.map {
                .object(["container": $0.container.json, "event": .number(Double($0.event.rawValue))])
            }),
        ])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        var agents: [AgentChange] = []
        for item in json.member("agents")?.arrayValue ?? [] {
            guard let id = item.member("id")?.stringValue,
                  let raw = item.member("event")?.intValue, let kind = NetworkEventKind(rawValue: raw) else {
                throw ProtocolError("network event: malformed agent change")
            }
            agents.append(AgentChange(id: id, kinds: try item.optionalStrings("kinds", in: "agent change") ?? [], event: kind))
        }
        var containers: [ContainerChange] = []
        for item in json.member("containers")?.arrayValue ?? [] {
            guard let record = item.member("container"),
                  let raw = item.member("event")?.intValue, let kind = NetworkEventKind(rawValue: raw) else {
                throw ProtocolError("network event: malformed container change")
            }
            containers.append(ContainerChange(container: try ContainerRecord(json: record), event: kind))
        }
        self.init(agents: agents, containers: containers)
    }
}

/// An agent as `al` lists it.
public struct AgentInfo: Sendable, Hashable {
    public var agentId: AgentUUID
    public var endpoint: String?
    public var kinds: [ContainerKind]
    public var containers: Int

    public init(agentId: AgentUUID, endpoint: String?, kinds: [ContainerKind], containers: Int) {
        self.agentId = agentId
        self.endpoint = endpoint
        self.kinds = kinds
        self.containers = containers
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "agentId": .string(agentId), "kinds": .array(kinds.map { .string($0) }),
            "containers": .number(Double(containers)),
        ]
        object["endpoint"] = endpoint.map { .string($0) } ?? .null
        return .object(object)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let what = "agent info"
        self.init(agentId: try json.requiredString("agentId", in: what),
                  endpoint: try json.optionalString("endpoint", in: what),
                  kinds: try json.optionalStrings("kinds", in: what) ?? [],
                  containers: json.member("containers")?.intValue ?? 0)
    }
}

/// What an agent tells the coordinator when it registers (`ar`).
public struct AgentRegistration: Sendable, Hashable {
    public var uuid: AgentUUID
    public var containers: [ContainerRecord]
    public var kinds: [ContainerKind]
    public var endpoint: String?

    public init(uuid: AgentUUID, containers: [ContainerRecord], kinds: [ContainerKind], endpoint: String?) {
        self.uuid = uuid
        self.containers = containers
        self.kinds = kinds
        self.endpoint = endpoint
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "uuid": .string(uuid), "containers": .array(containers.map(\.json)),
            "kinds": .array(kinds.map { .string($0) }),
        ]
        object["endpoint"] = endpoint.map { .string($0) } ?? .null
        return .object(object)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let what = "agent registration"
        guard json.objectValue != nil else { throw ProtocolError("\(what) must be an object") }
        var containers: [ContainerRecord] = []
        if let list = json.member("containers") {
            guard let array = list.arrayValue else { throw ProtocolError("\(what): 'containers' must be an array") }
            for item in array { containers.append(try ContainerRecord(json: item)) }
        }
        self.init(uuid: try json.requiredString("uuid", in: what),
                  containers: containers,
                  kinds: try json.optionalStrings("kinds", in: what) ?? [],
                  endpoint: try json.optionalString("endpoint", in: what))
    }
}

/// The protocol's default timeouts, in milliseconds.
public struct Timeouts: Sendable, Hashable {
    /// A client (and the agents it registered) silent for longer is dropped. Reference: 3 s.
    public var aliveMs: Int64
    /// An unreferenced container is terminated after this long. Reference: 5 s.
    public var unusedContainerMs: Int64
    /// How often clients ping. Reference: 1 s.
    public var pingIntervalMs: Int64
    /// The longest a request may wait for its answer (the reference waits forever).
    public var requestMs: Int64
    /// How often queued network events are flushed and timers checked.
    public var tickMs: Int64

    public init(aliveMs: Int64 = 3000, unusedContainerMs: Int64 = 5000, pingIntervalMs: Int64 = 1000,
                requestMs: Int64 = 30_000, tickMs: Int64 = 100) {
        self.aliveMs = aliveMs
        self.unusedContainerMs = unusedContainerMs
        self.pingIntervalMs = pingIntervalMs
        self.requestMs = requestMs
        self.tickMs = tickMs
    }

    public static let reference = Timeouts()

    /// The longest any of these may be: a day. A longer one is a mistake, not a setting.
    public static let maxMs: Int64 = 86_400_000

    /// Throws, naming the field, when a timeout is not between 1 ms and `maxMs`.
    public func validate() throws(ProtocolError) {
        for (value, name) in [(aliveMs, "aliveMs"), (unusedContainerMs, "unusedContainerMs"),
                              (pingIntervalMs, "pingIntervalMs"), (requestMs, "requestMs"), (tickMs, "tickMs")] {
            guard value >= 1, value <= Self.maxMs else {
                throw ProtocolError("timeouts.\(name) \(value) ms is out of range (1 to \(Self.maxMs))")
            }
        }
    }
}
