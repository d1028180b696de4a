// Errors that cross the wire. A response error's payload is `{"message", "stack"}` in the
// reference; hulynet adds `"code"`: the network's own failure, or "app" for a container's own
// error, so that a hulynet peer acts on a code and never on wording. A TypeScript peer sends no
// code: `NetworkErrorCode(text:)` is the one rule that recognises the reference's own messages.

/// The network's own failures, as opposed to a container's answer that happens to be an error.
public enum NetworkErrorCode: String, Sendable, Hashable, CaseIterable {
    /// No container with that uuid is known (to the coordinator, or to the agent asked).
    case containerNotFound = "container_not_found"
    /// No agent offers the kind asked for.
    case noAgent = "no_agent"
    /// The agent hosting the container was removed (dead, unregistered) or is not connected.
    case agentGone = "agent_gone"
    /// No answer within the time allowed.
    case timeout = "timeout"
    /// The request is refused for now: too many in flight, or a rate limit. Retry later.
    case retryLater = "retry_later"
    /// A configured limit (message size, peers) refuses the request for good.
    case limit = "limit"
    /// The request is malformed: not JSON, wrong shape, unknown method.
    case invalid = "invalid"
    /// The caller may not do this (another client's agent, say).
    case forbidden = "forbidden"

    /// The failures after which a container is looked for again: it has moved, or is moving.
    public var meansMoved: Bool {
        switch self {
        case .containerNotFound, .agentGone: true
        default: false
        }
    }

    /// The reference's texts for the same failures (packages/core/src/network.ts, agent.ts,
    /// client.ts): its peers send text only.
    public init?(text: String) {
        if text.hasPrefix("No suitable agents found for container ") {
            self = .noAgent
        } else if Self.names(text, prefix: "Container ", suffix: " not found") {
            self = .containerNotFound
        } else if Self.names(text, prefix: "Agent ", suffix: " not found") {
            self = .agentGone
        } else {
            return nil
        }
    }

    /// `text` is exactly prefix + one word + suffix (a container's own message that merely says
    /// "not found" somewhere does not count).
    private static func names(_ text: String, prefix: String, suffix: String) -> Bool {
        guard text.hasPrefix(prefix), text.hasSuffix(suffix), text.count > prefix.count + suffix.count else { return false }
        return !text.dropFirst(prefix.count).dropLast(suffix.count).contains(" ")
    }
}

/// An error answered by the other side (responseError), or a local failure standing for one.
public struct RemoteError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// The network's own failure, when it is one; nil for a container's error.
    public var code: NetworkErrorCode?

    public init(_ message: String, code: NetworkErrorCode? = nil) {
        self.message = message
        self.code = code
    }

    public var description: String { message }

    /// Any error as the other side will see it: a `RemoteError` as it is, anything else as a
    /// container's own error with its description.
    public init(_ error: any Error) {
        if let remote = error as? RemoteError { self = remote } else { self.init("\(error)") }
    }

    /// The `code` of a container's own error on the wire.
    static let applicationCode = "app"

    /// The payload of a responseError: `{"message": text, "stack": "", "code": code or "app"}`.
    public var payload: [UInt8] {
        JSONValue.object([
            "message": .string(message), "stack": .string(""),
            "code": .string(code?.rawValue ?? Self.applicationCode),
        ]).serialized()
    }

    /// Reads a responseError's payload: its code when it carries one, else the reference's text
    /// rule. A payload that is not the usual shape becomes the message as it is.
    public init(payload: some Collection<UInt8>) {
        guard let value = try? JSONValue.parse(payload), let message = value.member("message")?.stringValue else {
            self.init(String(decoding: payload, as: UTF8.self))
            return
        }
        if let raw = value.member("code")?.stringValue {
            // "app", or a code this version does not know: the container's business.
            self.init(message, code: NetworkErrorCode(rawValue: raw))
        } else {
            self.init(message, code: NetworkErrorCode(text: message))
        }
    }
}
