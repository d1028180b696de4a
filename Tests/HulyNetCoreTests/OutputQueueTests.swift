import XCTest
@testable import HulyNetCore

final class OutputQueueTests: XCTestCase {
    /// Outputs added while others are carried out (the owner's reactions) come after them, in
    /// order, in the same drain; a nested drain carries out nothing itself.
    func testOutputsAddedWhileDrainingComeAfterInOrder() {
        let queue = OutputQueue<Int>()
        queue.items = [1, 2, 3]
        var seen: [Int] = []
        queue.drain { n in
            seen.append(n)
            if n == 1 {
                queue.items.append(10)
                queue.items.append(11)
                queue.drain { _ in XCTFail("a nested drain runs nothing") }
            }
            if n == 10 { queue.items.append(20) }
        }
        XCTAssertEqual(seen, [1, 2, 3, 10, 11, 20])
        XCTAssertTrue(queue.items.isEmpty)
        queue.items = [4, 5]
        queue.drain { seen.append($0) }
        XCTAssertEqual(seen.suffix(2), [4, 5], "the queue serves again after a drain")
    }
}
