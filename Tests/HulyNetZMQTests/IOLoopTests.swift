import HulyNetSync
import HulyNetZMQ
import XCTest

/// The I/O loop as a task executor, and work a loop hands to itself.
final class IOLoopTests: XCTestCase {
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
}

/// A value behind a lock.
private final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func append<Element>(_ element: Element) where Value == [Element] { lock.withLock { stored.append(element) } }
}

private struct TimedOut: Error {}

/// Runs an async body with a bound: fails the test (and throws) when it does not finish in time.
private func withBound<T: Sendable>(_ seconds: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                                    _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome: Result<T, any Error>? = await withCheckedContinuation { continuation in
        let once = ResumeOnce(continuation)
        Task {
            do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            once.resume(nil)
        }
    }
    guard let outcome else {
        XCTFail("\(what): not finished within \(seconds) s", file: file, line: line)
        throw TimedOut()
    }
    return try outcome.get()
}
