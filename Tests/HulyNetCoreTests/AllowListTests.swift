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
        \(String(repeating: "d", count: 40)) dave kinds=a,b tenant=t1 agents= rate=5 burst=10
        \(String(repeating: "e", count: 40))
        \(String(repeating: "f", count: 40)) frank burst=3
        """
        let list = AllowList(parsing: text, isKey: isKey)
        XCTAssertEqual(list.count, 3)
        XCTAssertEqual(list.entry(for: String(repeating: "d", count: 40))?.policy,
                       AccessPolicy(name: "dave", agentKinds: [], kinds: ["a", "b"], tenant: "t1", requestsPerSecond: 5, burst: 10))
        XCTAssertEqual(list.entry(for: alice)?.name, "alice")
        XCTAssertEqual(list.entry(for: bob)?.name, "bob")
        XCTAssertNil(list.entry(for: "short"))
        XCTAssertEqual(list.problems, [
            "line 5: the key of bob again (the first line counts)",
            "line 6: not a Z85 CURVE public key",
            "line 7: 'names' is not NAME=VALUE",
            "line 9: expected `KEY NAME [RULE...]`, got one word",
            "line 10: burst= needs rate=",
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

final class AccessPolicyTests: XCTestCase {
    func testDecisionsNameTheirRule() throws {
        let tenant = try AccessPolicy(name: "t1-app", rules: ["kinds=session,query", "tenant=t1", "agents=session"])
        XCTAssertNil(tenant.refusesRegistering(kinds: ["session"]))
        XCTAssertEqual(tenant.refusesRegistering(kinds: ["session", "query"]),
                       "key t1-app may not register agents of kind query (rule agents=session)")
        XCTAssertNil(tenant.refusesGetting(kind: "session", labels: ["t1", "x"]))
        XCTAssertEqual(tenant.refusesGetting(kind: "session", labels: ["x"]),
                       "key t1-app must get containers with its tenant's label t1 (rule tenant=t1)")
        XCTAssertEqual(tenant.refusesGetting(kind: "transactor", labels: ["t1"]),
                       "key t1-app may not use containers of kind transactor (rule kinds=query,session)")
        XCTAssertNotNil(tenant.refusesSeeing(kind: "session", labels: ["t2"]))
        XCTAssertNotNil(tenant.refusesSeeing(kind: "session", labels: nil))
        XCTAssertTrue(tenant.restrictsSight)
        let open = AccessPolicy(name: "admin")
        XCTAssertFalse(open.restrictsSight)
        XCTAssertNil(open.refusesRegistering(kinds: ["any"]))
        XCTAssertNil(open.refusesSeeing(kind: "any", labels: nil))
        for bad in [["tenant="], ["rate=0"], ["rate=x"], ["burst=0", "rate=1"], ["colour=red"], ["kinds"]] {
            XCTAssertThrowsError(try AccessPolicy(name: "n", rules: bad.map { Substring($0) }), "\(bad)")
        }
    }

    func testRateLimitRefillsAtItsRate() {
        var limit = RateLimit(perSecond: 10, burst: 3, now: 0)
        XCTAssertEqual((0..<5).map { _ in limit.take(now: 0) }, [true, true, true, false, false])
        XCTAssertFalse(limit.take(now: 50), "half a token")
        XCTAssertTrue(limit.take(now: 100))
        XCTAssertFalse(limit.take(now: 100))
        XCTAssertEqual((0..<4).map { _ in limit.take(now: 10_000) }, [true, true, true, false], "never past the burst")
    }
}
