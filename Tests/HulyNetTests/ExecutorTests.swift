import HulyNet
import HulyNetCore
import HulyNetZMQ
import XCTest

/// The I/O loop as a task executor, and work a loop hands to itself.
final class ExecutorTests: IntegrationTestCase {
    func testWorkQueuedOnTheLoopRunsThereInOrderWithinTheTurn() async throws {
        let loop = IOLoop(name: "test")
        loop.start()
        defer { loop.stop() }
        let order = Locked<[String]>([])
        let done = try await withBound(3, "work queued from the loop") { () async -> Bool in
            await withCheckedContinuation { continuation in
                loop.execute {
                    order.append("outer")
                    loop.execute { order.append("first, on the loop: \(loop.inLoop)") }
                    loop.execute {
                        order.append("second")
                        continuation.resume(returning: true)
                    }
                    order.append("outer ends")
                }
            }
        }
        XCTAssertEqual(done, true)
        XCTAssertEqual(order.value, ["outer", "outer ends", "first, on the loop: true", "second"])
    }

    func testTaskPreferringTheLoopRunsOnItAcrossAwaits() async throws {
        let loop = IOLoop(name: "test")
        loop.start()
        defer { loop.stop() }
        let seen = try await withBound(3, "a task on the loop") {
            await withTaskExecutorPreference(loop) { () -> [Bool] in
                let before = loop.inLoop
                // A continuation resumed from the loop, as a client's answers are.
                let answered: Bool = await withCheckedContinuation { continuation in
                    loop.execute { continuation.resume(returning: true) }
                }
                return [before, answered, loop.inLoop]
            }
        }
        XCTAssertEqual(seen, [true, true, true])
    }

    func testTaskPreferringAStoppedLoopStillRuns() async throws {
        let loop = IOLoop(name: "test")
        loop.start()
        loop.stop()
        let value = try await withBound(3, "a task preferring a stopped loop") {
            await withTaskExecutorPreference(loop) { () -> Int in
                await Task.yield()
                return loop.inLoop ? -1 : 42
            }
        }
        XCTAssertEqual(value, 42, "runs on the global executor instead, never on the stopped loop")
    }

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

/// A value behind a lock.
private final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func append<Element>(_ element: Element) where Value == [Element] { lock.withLock { stored.append(element) } }
}
