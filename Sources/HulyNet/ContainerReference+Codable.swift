import HulyNetCore

// Typed requests: the data is written from an `Encodable` once (members in the order it encodes
// them) and the answer read into a `Decodable` from the container's text, with exact integers.
// Errors: `NetworkError` from the network, `EncodingError` / `DecodingError` from the values.

extension ContainerReference {
    /// A request through the coordinator with typed data and answer.
    public func request<Answer: Decodable>(_ operation: String, _ data: some Encodable, as answer: Answer.Type,
                                           timeoutMs: Int64? = nil) async throws -> Answer {
        try await request(operation, json: JSONText(encoding: data), timeoutMs: timeoutMs).decode(Answer.self)
    }
}

extension ContainerConnection {
    /// A request over this connection with typed data and answer.
    public func request<Answer: Decodable>(_ operation: String, _ data: some Encodable, as answer: Answer.Type,
                                           timeoutMs: Int64? = nil) async throws -> Answer {
        try await request(operation, json: JSONText(encoding: data), timeoutMs: timeoutMs).decode(Answer.self)
    }
}

extension NetworkClient {
    /// A request to container `target` through the coordinator with typed data and answer.
    public func request<Answer: Decodable>(_ target: ContainerUUID, operation: String, _ data: some Encodable,
                                           as answer: Answer.Type, timeoutMs: Int64? = nil) async throws -> Answer {
        try await request(target, operation: operation, json: JSONText(encoding: data), timeoutMs: timeoutMs).decode(Answer.self)
    }
}
