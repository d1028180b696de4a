import HulyNet
import HulyNetCore
import HulyNetProcess
import XCTest

// `hulynet agent --direct`: a real agent process serving each container on an endpoint of its
// own; a client connects to the container itself, not through the agent's endpoint.

final class DirectAgentTests: ProcessTestCase {
    func testAgentDirectServesContainersOnTheirOwnEndpoints() async throws {
        let (_, port) = try startServer()
        let agent = try startHulynet(["agent", "--network", "127.0.0.1:\(port)", "--direct"])
        try agent.waitForLine(containing: "(containers on direct endpoints)", timeoutMs: scaled(10_000))

        let client = try await connectClient(port: port)
        let agents = try await client.agentList()
        let agentEndpoint = try XCTUnwrap(agents.first?.endpoint)
        let reference = try await client.get(kind: "echo", options: GetOptions(uuid: "direct-\(makeUUID())"))
        let endpoint = try EndpointRef(parsing: reference.endpoint)
        XCTAssertEqual(endpoint.kind, .direct)
        XCTAssertEqual(endpoint.uuid, reference.uuid)
        XCTAssertNotEqual(endpoint.port, try EndpointRef(parsing: agentEndpoint).port)

        let connection = try await reference.connect(timeoutMs: Int64(scaled(5000)))
        let answer = try await connection.request("echo", "over the direct endpoint")
        XCTAssertEqual(answer, "over the direct endpoint")
        let routed = try await reference.request("echo", 42)
        XCTAssertEqual(routed, 42)
        await connection.close()
    }
}
