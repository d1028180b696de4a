import Foundation
import HulyNet
import HulyNetCore
import XCTest

/// The issue's example: key order, nesting, a number no double holds, and two spellings a
/// parser would rewrite.
let callerText = #"{"zeta":1,"alpha":2,"mid":{"b":1,"a":2},"big":12345678901234567890,"f":1.10,"e":1e2}"#
/// The same bytes are kept when the caller chose a layout with spaces.
let spacedText = #"[ 1.0 , {"z" : null, "a":"\u00e9\n"} ]"#

/// Event texts in arrival order.
final class TextInbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ text: JSONText) { lock.withLock { items.append(text.string) } }
    var all: [String] { lock.withLock { items } }
}

/// Payloads arrive as the bytes the caller wrote, and answers and events come back as the
/// container wrote them, on every path: through the coordinator, over routed and direct
/// connections, and by uuid.
final class PayloadTextTests: IntegrationTestCase {
    func testEchoKeepsTheCallersBytesOnEveryPath() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let agent = Agent(factories: [
            "echo": echoFactory(),
            "echo-direct": { options in
                let uuid = options.uuid ?? makeUUID()
                return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options),
                                        connection: .direct(host: "127.0.0.1", port: 0))
            },
        ])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)

        for kind in ["echo", "echo-direct"] {
            let reference = try await client.get(kind: kind)
            let connection = try await reference.connect()
            let events = TextInbox()
            connection.onEventText { events.append($0) }
            for text in [callerText, spacedText] {
                let data = try JSONText(validating: text)
                let viaCoordinator = try await reference.request("echo", json: data)
                XCTAssertEqual(viaCoordinator.string, text, "\(kind) through the coordinator")
                let byUUID = try await client.request(reference.uuid, operation: "echo", json: data)
                XCTAssertEqual(byUUID.string, text, "\(kind) by uuid")
                let overConnection = try await connection.request("echo", json: data)
                XCTAssertEqual(overConnection.string, text, "\(kind) over its connection")
                let reached = try await connection.request("broadcast", json: data)
                XCTAssertEqual(reached.string, "1")
            }
            let bothEvents = await eventually("\(kind): both events") { events.all.count == 2 }
            XCTAssertTrue(bothEvents)
            XCTAssertEqual(events.all, [callerText, spacedText], "\(kind): events as the container sent them")
            // Typed callers still get values.
            let value = try await reference.request("echo", ["k": 1.5])
            XCTAssertEqual(value, ["k": 1.5])
            await connection.close()
        }
    }

    /// What a container answers is what the caller gets, byte for byte (here a container that
    /// writes its own text around the data).
    func testAnswersWrittenByTheContainerArriveUnchanged() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let agent = Agent(factories: ["wrap": { options in
            StartedContainer(uuid: options.uuid ?? makeUUID(), container: WrappingContainer())
        }])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "wrap")
        let answer = try await reference.request("wrap", json: JSONText(validating: "1.10"))
        XCTAssertEqual(answer.string, #"{"z":1.10,"a":[1e2, 2]}"#)
    }

    /// Typed requests: an Encodable written once in its members' order, the answer decoded with
    /// exact integers.
    func testTypedRequestsKeepOrderAndExactIntegers() async throws {
        struct Order: Codable, Equatable {
            var zeta: Int
            var alpha: String
            var big: UInt64
        }
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        try await agentSide.serve(Agent(factories: ["echo": echoFactory()]))
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "echo")
        let order = Order(zeta: 1, alpha: "a", big: 12_345_678_901_234_567_890)
        let back = try await reference.request("echo", order, as: Order.self)
        XCTAssertEqual(back, order)
        let text = try await reference.request("echo", json: JSONText(encoding: order))
        XCTAssertEqual(text.string, #"{"zeta":1,"alpha":"a","big":12345678901234567890}"#)
        let connection = try await reference.connect()
        let overConnection = try await connection.request("echo", [order], as: [Order].self)
        XCTAssertEqual(overConnection, [order])
        let byUUID = try await client.request(reference.uuid, operation: "echo", order, as: Order.self)
        XCTAssertEqual(byUUID, order)
        // A mismatched answer is a DecodingError naming where.
        do {
            _ = try await reference.request("echo", ["zeta": "one"], as: Order.self)
            XCTFail("decoded a string as Int")
        } catch let error as DecodingError {
            XCTAssertTrue("\(error)".contains("zeta"), "\(error)")
        }
        await connection.close()
    }

    /// Malformed text is refused where it enters, before anything is sent.
    func testInvalidTextIsRefusedAtTheEdge() {
        for bad in ["", "{", #"{"a":1} x"#, "[1,]", "01", #""\u12""#, "nul"] {
            XCTAssertThrowsError(try JSONText(validating: bad), "\(bad) was accepted")
        }
        XCTAssertEqual(try JSONText(validating: " 1 ").bytes, Array(" 1 ".utf8), "kept as written, whitespace included")
    }
}

/// Answers `{"z":<data>,"a":[1e2, 2]}`, written by hand.
private final class WrappingContainer: CallbackContainer, @unchecked Sendable {
    func request(operation: String, data: JSONText, client: ClientUUID?,
                 reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        reply(Result { try JSONText(validating: #"{"z":"# + data.string + #","a":[1e2, 2]}"#) })
    }
}
