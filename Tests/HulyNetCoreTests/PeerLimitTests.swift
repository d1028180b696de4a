import XCTest
@testable import HulyNetCore

// The pure policies that bound what peers can cost: the connection cap and the log summary of
// refused input (Sources/HulyNetCore/ConnectionCap.swift, LogSummary.swift).

final class ConnectionCapTests: XCTestCase {
    /// A cap of `limit` that accepted `fds` in order, none closed.
    private func cap(_ limit: Int, accepted fds: Int32...) -> ConnectionCap {
        var cap = ConnectionCap(limit: limit)
        for fd in fds { XCTAssertNil(cap.accepted(fd)) }
        return cap
    }

    func testUnderTheLimitNothingIsClosed() {
        let cap = cap(3, accepted: 10, 11, 12)
        XCTAssertEqual(cap.count, 3)
    }

    func testOverTheLimitTheOldestSilentConnectionIsClosed() {
        var cap = cap(3, accepted: 10, 11, 12)
        cap.greeted(10)
        XCTAssertEqual(cap.accepted(13), 11, "10 said hello: 11 is the oldest silent one")
        XCTAssertEqual(cap.accepted(14), 12)
        XCTAssertEqual(cap.count, 3)
    }

    func testWhenEveryConnectionSaidHelloTheNewcomerIsClosed() {
        var cap = cap(2, accepted: 10, 11)
        cap.greeted(10)
        cap.greeted(11)
        XCTAssertEqual(cap.accepted(12), 12)
        XCTAssertEqual(cap.count, 2)
    }

    func testClosedConnectionsMakeRoom() {
        var cap = cap(2, accepted: 10, 11)
        cap.closed(10)
        XCTAssertNil(cap.accepted(12))
        XCTAssertEqual(cap.count, 2)
    }

    func testAReusedDescriptorIsANewSilentConnection() {
        var cap = ConnectionCap(limit: 2)
        _ = cap.accepted(10)
        cap.greeted(10)
        _ = cap.accepted(11)
        cap.greeted(11)
        // 10 closed without its close being seen, and the number was given to a new connection.
        XCTAssertNil(cap.accepted(10))
        XCTAssertEqual(cap.accepted(12), 10, "the reused number names a connection that has not said hello")
    }

    /// A flood of silent connections with a few clients among them: the clients are never
    /// closed, the count never passes the limit, and the queue of silent ones stays small.
    func testFloodKeepsClientsAndStaysWithinTheLimit() {
        var cap = ConnectionCap(limit: 100)
        var open = Set<Int32>()
        var clients = Set<Int32>()
        var nextFd: Int32 = 3
        for round in 0..<20_000 {
            let fd = nextFd
            nextFd += 1
            open.insert(fd)
            if let victim = cap.accepted(fd) {
                XCTAssertFalse(clients.contains(victim), "a client that said hello was closed")
                open.remove(victim)
                cap.closed(victim)
            }
            if round % 500 == 0, open.contains(fd) {
                cap.greeted(fd)
                clients.insert(fd)
            }
            XCTAssertLessThanOrEqual(cap.count, 100)
        }
        XCTAssertEqual(clients.filter { open.contains($0) }, clients)
        XCTAssertEqual(cap.count, open.count)
    }
}

final class LogSummaryTests: XCTestCase {
    func testNothingCountedNoLine() {
        var summary = LogSummary(intervalMs: 1000)
        XCTAssertNil(summary.line(now: 5000, what: "input"))
    }

    func testOneLinePerIntervalWithCountsPerReason() {
        var summary = LogSummary(intervalMs: 10_000)
        for _ in 0..<5 { summary.record("unknown op", input: [0x41, 0x00]) }
        summary.record("bad JSON")
        XCTAssertEqual(summary.line(now: 1000, what: "input"), #"input: unknown op: 5, bad JSON: 1; sample "A\x00""#,
                       "the first line after a quiet spell comes at once")
        for _ in 0..<1000 { summary.record("unknown op") }
        XCTAssertNil(summary.line(now: 5000, what: "input"), "at most one line per interval")
        XCTAssertEqual(summary.line(now: 11_000, what: "input"), "input in the last 10000 ms: unknown op: 1000")
        XCTAssertNil(summary.line(now: 30_000, what: "input"), "nothing new, nothing logged")
        XCTAssertEqual(summary.totals, ["unknown op": 1005, "bad JSON": 1])
    }

    func testSampleIsEscapedAndBounded() {
        let bytes: [UInt8] = Array("ok\"\\".utf8) + [0x0A, 0xFF] + [UInt8](repeating: 0x7A, count: 100)
        let text = LogSummary.escaped(bytes, limit: 10)
        XCTAssertEqual(text, #"ok\"\\\x0a\xffzzzz..."#)
        XCTAssertTrue(text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F })
    }
}
