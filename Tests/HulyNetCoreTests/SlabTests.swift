import XCTest
@testable import HulyNetCore

final class SlabTests: XCTestCase {
    func testKeysOfAFreshTableCountFromOne() {
        var slab = Slab<String>()
        XCTAssertEqual(slab.insert("a"), 1)
        XCTAssertEqual(slab.insert("b"), 2)
        XCTAssertEqual(slab.insert("c"), 3)
        XCTAssertEqual(slab.count, 3)
        XCTAssertEqual(slab[2], "b")
    }

    func testARemovedKeyFindsNothingEvenOnceItsPlaceIsReused() {
        var slab = Slab<String>()
        let a = slab.insert("a")
        XCTAssertEqual(slab.removeValue(forKey: a), "a")
        XCTAssertNil(slab.removeValue(forKey: a), "removed once")
        let b = slab.insert("b")
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(b & 0xFFFF_FFFF, a & 0xFFFF_FFFF, "the same place")
        XCTAssertNil(slab[a])
        XCTAssertNil(slab.removeValue(forKey: a))
        XCTAssertEqual(slab[b], "b")
        XCTAssertEqual(slab.count, 1)
    }

    func testKeysNeverGivenFindNothing() {
        var slab = Slab<Int>()
        let key = slab.insert(7)
        for stranger: UInt64 in [0, key + 1, key | 1 << 32, key | 1 << 63, .max, 0xFFFF_FFFF] {
            XCTAssertNil(slab[stranger], "\(stranger)")
            XCTAssertNil(slab.removeValue(forKey: stranger), "\(stranger)")
        }
        XCTAssertEqual(slab.count, 1)
    }

    /// Many takes of one place: every key is new, and only the last one finds the entry.
    func testEveryReuseGivesANewKey() {
        var slab = Slab<Int>()
        var seen = Set<UInt64>()
        for n in 0..<10_000 {
            let key = slab.insert(n)
            XCTAssertTrue(seen.insert(key).inserted)
            XCTAssertEqual(slab.removeValue(forKey: key), n)
        }
        XCTAssertTrue(slab.isEmpty)
    }

    func testIterationAndRemoveAll() {
        var slab = Slab<String>()
        let keys = ["a", "b", "c", "d"].map { slab.insert($0) }
        slab.removeValue(forKey: keys[1])
        XCTAssertEqual(slab.map(\.value), ["a", "c", "d"])
        XCTAssertEqual(slab.map(\.key), [keys[0], keys[2], keys[3]])
        slab.removeAll()
        XCTAssertTrue(slab.isEmpty)
        XCTAssertEqual(Array(slab).count, 0)
        for key in keys { XCTAssertNil(slab[key]) }
        let again = slab.insert("e")
        XCTAssertFalse(keys.contains(again))
        XCTAssertEqual(slab[again], "e")
    }
}
