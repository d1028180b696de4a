import XCTest
@testable import HulyNetCore

// Unit tests of exactly-once for resent requests (Sources/HulyNetCore/RecentAnswers.swift): a
// resend runs once, joins the first run, or is answered from memory; memory is bounded by a
// window, by entries and by bytes. Fake clock, no I/O.

private func origin(_ request: String, client: ClientUUID = "c1") -> RequestOrigin {
    RequestOrigin(client: client, request: request)
}

private func ok(_ text: String) -> Result<[UInt8], RemoteError> { .success(Array(text.utf8)) }

/// The admission as text, to compare.
private func describe<W>(_ admission: RecentAnswers<W>.Admission) -> String {
    switch admission {
    case .run: return "run"
    case .joined: return "joined"
    case .answered(.success(let bytes)): return "answered " + String(decoding: bytes, as: UTF8.self)
    case .answered(.failure(let error)): return "failed \(error.message) \(error.code?.rawValue ?? "-")"
    }
}

final class RecentAnswersTests: XCTestCase {

    func testFirstRunsResendJoinsFinishReturnsTheJoinedThenAnswersFromMemory() {
        var answers = RecentAnswers<String>()
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: "first", now: 0)), "run")
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: "second", now: 5)), "joined")
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: "third", now: 6)), "joined")
        XCTAssertEqual(answers.finish(origin("c1-1"), ok("42"), now: 10), ["second", "third"],
                       "the first waiter is answered by its own run; the joined ones, in order, by finish")
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: "fourth", now: 20)), "answered 42")
        XCTAssertEqual(answers.count, 1)
    }

    func testAFailureIsRememberedWithItsCode() {
        var answers = RecentAnswers<Int>()
        _ = answers.admit(origin("c1-1"), waiter: 1, now: 0)
        XCTAssertEqual(answers.finish(origin("c1-1"), .failure(RemoteError("boom", code: .timeout)), now: 1), [])
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: 2, now: 2)), "failed boom timeout")
        XCTAssertEqual(answers.bytes, 4, "a failure counts its message's bytes")
    }

    func testOriginsAreOneClientsOneRequest() {
        var answers = RecentAnswers<Int>()
        _ = answers.admit(origin("r-1", client: "c1"), waiter: 1, now: 0)
        XCTAssertEqual(describe(answers.admit(origin("r-1", client: "c2"), waiter: 2, now: 0)), "run",
                       "the same request id of another client is another request")
        XCTAssertEqual(describe(answers.admit(origin("r-2", client: "c1"), waiter: 3, now: 0)), "run")
        XCTAssertEqual(answers.count, 3)
    }

    func testFinishOfARequestNotRunningRemembersNothing() {
        var answers = RecentAnswers<Int>()
        XCTAssertEqual(answers.finish(origin("never"), ok("1"), now: 0), [])
        XCTAssertEqual(answers.count, 0)
        XCTAssertEqual(answers.bytes, 0)
        XCTAssertEqual(describe(answers.admit(origin("never"), waiter: 1, now: 1)), "run")
    }

    func testAnAnswerIsForgottenOnceOlderThanTheWindow() {
        var answers = RecentAnswers<Int>(windowMs: 100)
        _ = answers.admit(origin("c1-1"), waiter: 1, now: 0)
        _ = answers.finish(origin("c1-1"), ok("yes"), now: 1000)
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: 2, now: 1100)), "answered yes",
                       "exactly the window old: still remembered")
        XCTAssertEqual(describe(answers.admit(origin("c1-1"), waiter: 3, now: 1101)), "run",
                       "older than the window: runs again")
        XCTAssertEqual(answers.bytes, 0)
    }

    func testARunUnderWayIsNeverForgotten() {
        var answers = RecentAnswers<Int>(windowMs: 100, maxEntries: 1, maxBytes: 1)
        _ = answers.admit(origin("slow"), waiter: 1, now: 0)
        _ = answers.admit(origin("other"), waiter: 2, now: 0)
        answers.forgetOld(now: 1_000_000)
        XCTAssertEqual(describe(answers.admit(origin("slow"), waiter: 3, now: 1_000_000)), "joined")
        XCTAssertEqual(answers.finish(origin("slow"), ok("done"), now: 1_000_001), [3])
    }

    func testPastMaxEntriesTheOldestAnswerIsForgottenFirst() {
        var answers = RecentAnswers<Int>(maxEntries: 2)
        for (index, request) in ["a", "b", "c"].enumerated() {
            _ = answers.admit(origin(request), waiter: 0, now: Int64(index))
            _ = answers.finish(origin(request), ok(request), now: Int64(index))
        }
        XCTAssertEqual(answers.count, 2)
        XCTAssertEqual(describe(answers.admit(origin("c"), waiter: 0, now: 3)), "answered c")
        XCTAssertEqual(describe(answers.admit(origin("b"), waiter: 0, now: 3)), "answered b")
        XCTAssertEqual(describe(answers.admit(origin("a"), waiter: 0, now: 3)), "run", "the oldest went first")
    }

    func testPastMaxBytesTheOldestAnswersAreForgottenUntilUnder() {
        var answers = RecentAnswers<Int>(maxBytes: 10)
        for (index, (request, text)) in [("a", "1234"), ("b", "5678"), ("c", "9012")].enumerated() {
            _ = answers.admit(origin(request), waiter: 0, now: Int64(index))
            _ = answers.finish(origin(request), ok(text), now: Int64(index))
        }
        XCTAssertEqual(answers.bytes, 8, "12 bytes were over 10: the oldest 4 went")
        XCTAssertEqual(answers.count, 2)
        XCTAssertEqual(describe(answers.admit(origin("b"), waiter: 0, now: 3)), "answered 5678")
        XCTAssertEqual(describe(answers.admit(origin("a"), waiter: 0, now: 3)), "run")
    }

    func testAnAnswerLargerThanMaxBytesIsNotKept() {
        var answers = RecentAnswers<Int>(maxBytes: 3)
        _ = answers.admit(origin("big"), waiter: 0, now: 0)
        _ = answers.finish(origin("big"), ok("12345"), now: 0)
        XCTAssertEqual(answers.count, 0)
        XCTAssertEqual(answers.bytes, 0)
    }

    /// Thousands of forgotten answers leave nothing behind, and the order of those still
    /// remembered survives the reclaim of the forgotten ones' place.
    func testMemoryOfForgottenAnswersIsReclaimed() {
        var answers = RecentAnswers<Int>(windowMs: 1000)
        for index in 0..<3000 {
            _ = answers.admit(origin("old-\(index)"), waiter: 0, now: 0)
            _ = answers.finish(origin("old-\(index)"), ok("xy"), now: 0)
        }
        XCTAssertEqual(answers.bytes, 6000)
        for index in 0..<10 {
            _ = answers.admit(origin("new-\(index)"), waiter: 0, now: 1500)
            _ = answers.finish(origin("new-\(index)"), ok("z"), now: 1500 + Int64(index))
        }
        XCTAssertEqual(answers.count, 10, "the 3000 old answers are past the window")
        XCTAssertEqual(answers.bytes, 10)
        XCTAssertLessThanOrEqual(answers.answeredOrderStorage, 10, "the forgotten answers' order entries are reclaimed")
        // The newest are forgotten in their order, one by one, after the reclaim.
        answers.forgetOld(now: 2505)
        XCTAssertEqual(answers.count, 5)
        XCTAssertEqual(describe(answers.admit(origin("new-4"), waiter: 0, now: 2505)), "run")
        XCTAssertEqual(describe(answers.admit(origin("new-5"), waiter: 0, now: 2505)), "answered z")
    }
}
