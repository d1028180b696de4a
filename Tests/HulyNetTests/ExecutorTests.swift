import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import XCTest

/// A client's I/O loop as the executor of the tasks that call it (the loop itself: HulyNetZMQTests).
final class ExecutorTests: IntegrationTestCase {
    func testRequestsFromATaskOnTheClientsExecutor() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "echo")
        let connection = try await reference.connect()
        let executor = client.executor
        let answers = try await withBound(5, "requests on the client's executor") {
            try await withTaskExecutorPreference(executor) { () -> [JSONValue] in
                var answers: [JSONValue] = []
                for index in 0..<50 {
                    answers.append(try await client.request(reference.uuid, operation: "echo", data: .number(Double(index))))
                    answers.append(try await connection.request("echo", .number(Double(-index))))
                }
                return answers
            }
        }
        XCTAssertEqual(answers.count, 100)
        XCTAssertEqual(answers.first, .number(0))
        XCTAssertEqual(answers.last, .number(-49))
        // Twenty-five in flight from tasks on the executor: every answer reaches its own caller.
        let pipelined = try await withBound(5, "pipelined requests on the client's executor") {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<25 {
                    group.addTask(executorPreference: executor) {
                        let answer = try await client.request(reference.uuid, operation: "echo", data: .number(Double(index)))
                        return answer == .number(Double(index))
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        XCTAssertEqual(pipelined, 25)
        await connection.close()
    }
}
