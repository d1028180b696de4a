import HulyNetSync
import Dispatch
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class SyncTests: XCTestCase {
    /// Four threads adding under the lock lose no increment.
    func testLockExcludes() {
        final class Counter: @unchecked Sendable {
            let lock = Lock()
            var value = 0
        }
        let counter = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<10_000 { counter.lock.withLock { counter.value += 1 } }
        }
        XCTAssertEqual(counter.lock.withLock { counter.value }, 40_000)
    }

    /// The first resume wins; the others do nothing (no double resume).
    func testResumeOnceResumesOnce() async {
        let value: Int = await withCheckedContinuation { continuation in
            let once = ResumeOnce(continuation)
            DispatchQueue.concurrentPerform(iterations: 8) { index in once.resume(index + 1) }
            once.resume(100)
        }
        XCTAssertTrue((1...8).contains(value))
    }

    func testMonotonicClockMovesForward() {
        let first = MonotonicClock.nowMs()
        let firstNs = MonotonicClock.nowNs()
        usleep(5_000)
        XCTAssertGreaterThanOrEqual(MonotonicClock.nowMs() - first, 4)
        XCTAssertGreaterThan(MonotonicClock.nowNs(), firstNs)
        XCTAssertEqual(Int64(MonotonicClock.nowNs() / 1_000_000) / 1000, MonotonicClock.nowMs() / 1000, accuracy: 1)
    }
}
