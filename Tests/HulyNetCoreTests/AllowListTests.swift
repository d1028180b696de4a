@testable import HulyNetCore
import XCTest

final class AllowListTests: XCTestCase {
    /// Keys here are any 40 characters; libzmq's check is the shell's.
    private let isKey: (String) -> Bool = { $0.utf8.count == 40 }
    private let alice = String(repeating: "a", count: 39) + "#" // Z85 keys may hold '#'
    private let bob = String(repeating: "b", count: 40)

    func testLinesCommentsAndProblems() {
        let text = """
        # the network's users
        \(alice) alice   # the first
           \(bob)\tbob

        \(bob) again
        short name
        \(String(repeating: "c", count: 40)) two names here
        """
        let list = AllowList(parsing: text, isKey: isKey)
        XCTAssertEqual(list.count, 2)
        XCTAssertEqual(list.entry(for: alice)?.name, "alice")
        XCTAssertEqual(list.entry(for: bob)?.name, "bob")
        XCTAssertNil(list.entry(for: "short"))
        XCTAssertEqual(list.problems, [
            "line 5: the key of bob again (the first line counts)",
            "line 6: not a Z85 CURVE public key",
            "line 7: expected `KEY NAME`, got 4 words",
        ])
    }

    func testEmptyAndHostileTexts() {
        XCTAssertEqual(AllowList(parsing: "", isKey: isKey).count, 0)
        XCTAssertEqual(AllowList(parsing: "\n\n#\n", isKey: isKey).problems, [])
        let long = AllowList(parsing: "\(bob) \(String(repeating: "n", count: 300))", isKey: isKey)
        XCTAssertEqual(long.count, 0)
        XCTAssertEqual(long.problems.count, 1)
    }
}
