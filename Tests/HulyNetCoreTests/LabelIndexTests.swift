import XCTest
@testable import HulyNetCore

// Unit tests of LabelIndex (Sources/HulyNetCore/LabelIndex.swift): it must answer exactly what
// `GetOptions.labelsMatch` over every entry would, only faster.

final class LabelIndexTests: XCTestCase {

    func testLabelsAskedForMustAllBeAmongTheEntrysLabels() {
        var index = LabelIndex<String>()
        index.insert("ab", kind: "k", labels: ["a", "b"])
        index.insert("bc", kind: "k", labels: ["b", "c"])
        XCTAssertEqual(index.all(kind: "k", labels: ["a"]), ["ab"])
        XCTAssertEqual(index.all(kind: "k", labels: ["b"]), ["ab", "bc"])
        XCTAssertEqual(index.all(kind: "k", labels: ["b", "a"]), ["ab"], "order does not matter")
        XCTAssertEqual(index.all(kind: "k", labels: ["a", "c"]), [], "no entry has both")
        XCTAssertEqual(index.all(kind: "k", labels: ["a", "b", "c"]), [], "more labels than any entry has")
        XCTAssertEqual(index.all(kind: "k", labels: ["z"]), [])
        XCTAssertEqual(index.first(kind: "k", labels: ["c"]), "bc")
        XCTAssertNil(index.first(kind: "k", labels: ["a", "c"]))
    }

    func testNoLabelsAskedForMatchesAnyEntryOfTheKindWithOrWithoutLabels() {
        var index = LabelIndex<String>()
        index.insert("bare", kind: "k", labels: nil)
        index.insert("empty", kind: "k", labels: [])
        index.insert("labelled", kind: "k", labels: ["a"])
        index.insert("other", kind: "j", labels: nil)
        XCTAssertEqual(index.all(kind: "k", labels: nil), ["bare", "empty", "labelled"])
        XCTAssertEqual(index.all(kind: "k", labels: []), ["bare", "empty", "labelled"])
        XCTAssertTrue(["bare", "empty", "labelled"].contains(index.first(kind: "k", labels: nil) ?? "none"))
        // An entry without labels never matches labels asked for.
        XCTAssertEqual(index.all(kind: "k", labels: ["a"]), ["labelled"])
        XCTAssertNil(index.first(kind: "nothing", labels: nil))
    }

    func testKindsAreKeptApart() {
        var index = LabelIndex<Int>()
        index.insert(1, kind: "k", labels: ["a"])
        index.insert(2, kind: "j", labels: ["a"])
        XCTAssertEqual(index.all(kind: "k", labels: ["a"]), [1])
        XCTAssertEqual(index.all(kind: "j", labels: ["a"]), [2])
        XCTAssertEqual(index.first(kind: "j", labels: nil), 2)
    }

    func testDuplicateLabelsCountOnce() {
        var index = LabelIndex<Int>()
        index.insert(1, kind: "k", labels: ["a", "a", "b"])
        XCTAssertEqual(index.all(kind: "k", labels: ["a", "a"]), [1])
        XCTAssertEqual(index.all(kind: "k", labels: ["b", "a", "b"]), [1])
        index.remove(1)
        XCTAssertEqual(index.all(kind: "k", labels: ["a"]), [])
        XCTAssertEqual(index.count, 0)
    }

    func testRemovalAndReplacement() {
        var index = LabelIndex<String>()
        index.insert("x", kind: "k", labels: ["a", "b"])
        index.insert("y", kind: "k", labels: ["a"])
        XCTAssertTrue(index.remove("x"))
        XCTAssertFalse(index.remove("x"), "already gone")
        XCTAssertFalse(index.contains("x"))
        XCTAssertEqual(index.all(kind: "k", labels: ["a"]), ["y"])
        XCTAssertEqual(index.all(kind: "k", labels: ["b"]), [])
        XCTAssertEqual(index.all(kind: "k", labels: nil), ["y"])

        // Inserting an id again replaces its kind and labels.
        index.insert("y", kind: "j", labels: ["c"])
        XCTAssertEqual(index.count, 1)
        XCTAssertEqual(index.all(kind: "k", labels: nil), [])
        XCTAssertEqual(index.all(kind: "j", labels: ["c"]), ["y"])
        XCTAssertEqual(index.all(kind: "j", labels: ["a"]), [])

        index.removeAll()
        XCTAssertEqual(index.count, 0)
        XCTAssertNil(index.first(kind: "j", labels: nil))
    }

    /// Many entries sharing one label and each with one of its own, then some removed: every
    /// answer is compared with `labelsMatch` over all the entries.
    func testManyEntriesAgreeWithLabelsMatch() {
        var index = LabelIndex<Int>()
        var labelsOf: [Int: [String]] = [:]
        for id in 0..<3000 {
            let labels = ["shared", "own-\(id)", "group-\(id % 7)"]
            labelsOf[id] = labels
            index.insert(id, kind: "k", labels: labels)
        }
        for id in stride(from: 0, to: 3000, by: 3) {
            index.remove(id)
            labelsOf[id] = nil
        }
        let queries: [[String]?] = [nil, ["shared"], ["own-5"], ["own-6"], ["shared", "own-10"], ["group-3"],
                                    ["group-3", "shared"], ["group-3", "own-10"], ["group-3", "own-17"], ["own-1", "own-2"]]
        for labels in queries {
            let expected = Set(labelsOf.filter { GetOptions(labels: labels).labelsMatch($0.value) }.keys)
            XCTAssertEqual(index.all(kind: "k", labels: labels), expected, "labels \(labels ?? [])")
            if let found = index.first(kind: "k", labels: labels) {
                XCTAssertTrue(expected.contains(found), "labels \(labels ?? []): \(found) does not match")
            } else {
                XCTAssertTrue(expected.isEmpty, "labels \(labels ?? []): nothing found, expected one of \(expected.count)")
            }
        }
        XCTAssertEqual(index.count, 2000)
    }
}
