// A network on loopback: a coordinator on a free port, an agent hosting a container kind, and a
// client that gets a container and sends it a request. Exit 0 only if the answer is right.
import Foundation
import HulyNet
import HulyNetCore

final class Greeter: ContainerType, @unchecked Sendable {
    static let kind: ContainerKind = "greeter"
    init(uuid: ContainerUUID, options: GetOptions) async throws {}
    func request(operation: String, data: JSONValue, client: ClientUUID?) async throws -> JSONValue {
        ["hello": data]
    }
}

let timeoutMs: Int64 = 5_000
do {
    let server = try NetworkServer(.init(host: "127.0.0.1", port: 0))
    let agentSide = try NetworkClient(host: "127.0.0.1", port: server.port)
    try await agentSide.serve(Agent(containerTypes: [Greeter.self]))
    let client = try NetworkClient(host: "127.0.0.1", port: server.port)
    try await client.waitForConnection(timeoutMs: timeoutMs)
    let greeter = try await client.get(kind: Greeter.kind, options: GetOptions(labels: ["consumer"]))
    let answer = try await greeter.request("greet", "world", timeoutMs: timeoutMs)
    guard answer == ["hello": "world"] else {
        print("swiftpm-consumer: unexpected answer \(answer)")
        exit(1)
    }
    print("swiftpm-consumer: coordinator on 127.0.0.1:\(server.port), greeter \(greeter.uuid) answered \(answer)")
    try await greeter.release(timeoutMs: timeoutMs)
    await client.close()
    await agentSide.close()
    server.stop()
} catch {
    print("swiftpm-consumer: \(error)")
    exit(1)
}
