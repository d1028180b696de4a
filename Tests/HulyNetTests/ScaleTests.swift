import Foundation
import HulyNet
import HulyNetCore
import XCTest

// Scale over real sockets on 127.0.0.1: many labelled get-or-starts on one agent, each finding
// the container its labels call for. Nothing here is timed; `hulynet bench` measures (the
// "by labels" and "scale:" cases, docs/PERFORMANCE.md). HULYNET_SCALE_GETS sets how many
// containers (default 1,000; the bench starts 10,000).

final class ScaleTests: IntegrationTestCase {
    private let count = ProcessInfo.processInfo.environment["HULYNET_SCALE_GETS"].flatMap { Int($0) } ?? 1000

    func testManyLabelledGetOrStartsOnOneAgentReuseExactlyTheMatchingContainers() async throws {
        let (server, agentSide, agent, recorder, client) = try await probeNetwork()
        let count = self.count

        // Labels of its own for each: a new container each.
        let first = try await getAll(client, count) { ["scale", "own-\($0)"] }
        XCTAssertEqual(Set(first).count, count, "distinct labels, distinct containers")
        XCTAssertEqual(recorder.started.count, count)

        // The same labels, in another order, or only some of them: the same container.
        let same = try await getAll(client, count) { ["own-\($0)", "scale"] }
        XCTAssertEqual(same, first)
        let subset = try await getAll(client, count) { ["own-\($0)"] }
        XCTAssertEqual(subset, first)
        let shared = try await client.get(kind: "probe", options: GetOptions(labels: ["scale"]))
        XCTAssertTrue(first.contains(shared.uuid), "a label every container has finds one of them")
        let unlabelled = try await client.get(kind: "probe")
        XCTAssertTrue(first.contains(unlabelled.uuid), "no labels asked for: any container of the kind")
        XCTAssertEqual(recorder.started.count, count, "nothing started for labels a container has")

        // Labels no container has all of: new containers.
        let more = try await getAll(client, 50) { ["own-\($0)", "more"] }
        XCTAssertEqual(Set(more).count, 50)
        XCTAssertTrue(Set(more).isDisjoint(with: first))
        // Fresh labels asked for twice at once: one container (the second get joins the first's
        // start, or finds its container).
        let pairs = try await getAll(client, 200) { ["pair-\($0 / 2)"] }
        for pair in 0..<100 { XCTAssertEqual(pairs[2 * pair], pairs[2 * pair + 1], "pair \(pair)") }
        XCTAssertEqual(Set(pairs).count, 100)
        XCTAssertEqual(recorder.started.count, count + 150)
        let listed = try await client.list(kind: "probe")
        XCTAssertEqual(listed.count, count + 150)
        XCTAssertEqual(Set(listed.filter { $0.labels == ["scale", "own-7"] }.map(\.uuid)), [first[7]])

        // Terminated containers are found no more. All but one are released and stop after the
        // unused timeout; the one left is then the only container with "scale".
        let keeper = try await makeClient(port: server.port)
        let kept = try await keeper.get(kind: "probe", options: GetOptions(labels: ["scale", "own-0"]))
        XCTAssertEqual(kept.uuid, first[0])
        await client.close()
        await eventually("every container but one was terminated", timeout: 15) { recorder.terminated.count == count + 149 }
        let later = try await makeClient(port: server.port)
        let survivor = try await later.get(kind: "probe", options: GetOptions(labels: ["scale"]))
        XCTAssertEqual(survivor.uuid, first[0])
        XCTAssertEqual(recorder.started.count, count + 150)
        let again = try await getAll(later, 10) { ["scale", "own-\($0 + 1)"] }
        XCTAssertTrue(Set(again).isDisjoint(with: first))
        XCTAssertEqual(Set(again).count, 10)

        // So are those of an agent that stopped: served again, it starts new ones.
        try await agentSide.unregister(agent)
        XCTAssertEqual(recorder.terminated.count, count + 160)
        try await agentSide.serve(agent)
        let fresh = try await later.get(kind: "probe", options: GetOptions(labels: ["scale", "fresh"]))
        let found = try await later.get(kind: "probe", options: GetOptions(labels: ["scale"]))
        XCTAssertEqual(found.uuid, fresh.uuid, "the only container with \"scale\" now")
        XCTAssertEqual(recorder.started.count, count + 161)
    }

    func testAcceptedStatelessContainerIsFoundByKind() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let uuid = "stateless-" + makeUUID()
        let agent = Agent(factories: ["probe": recorder.factory()])
        agent.addStatelessContainer(uuid: uuid, kind: "probe", container: ProbeContainer(uuid: uuid, recorder: recorder))
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)

        let found = try await client.get(kind: "probe")
        XCTAssertEqual(found.uuid, uuid, "the network accepted it: a get of its kind without labels finds it")
        let labelled = try await client.get(kind: "probe", options: GetOptions(labels: ["a"]))
        XCTAssertNotEqual(labelled.uuid, uuid, "it has no labels")
        XCTAssertEqual(recorder.started, [labelled.uuid])
    }

    /// `gg` of `count` containers of kind "probe", 25 at a time, the labels of each from its index;
    /// the uuids answered, in index order.
    private func getAll(_ client: NetworkClient, _ count: Int,
                        labels: @escaping @Sendable (Int) -> [String]) async throws -> [ContainerUUID] {
        let get: @Sendable (Int) async throws -> (Int, ContainerUUID) = { index in
            (index, try await client.get(kind: "probe", options: GetOptions(labels: labels(index))).uuid)
        }
        return try await withThrowingTaskGroup(of: (Int, ContainerUUID).self) { group in
            var uuids = [ContainerUUID](repeating: "", count: count)
            var next = min(25, count)
            for index in 0..<next { group.addTask { try await get(index) } }
            while let (index, uuid) = try await group.next() {
                uuids[index] = uuid
                if next < count {
                    let index = next
                    next += 1
                    group.addTask { try await get(index) }
                }
            }
            return uuids
        }
    }
}
