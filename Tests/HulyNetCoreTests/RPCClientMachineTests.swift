import XCTest
@testable import HulyNetCore

// Unit tests of the client side of the back-RPC protocol (Sources/HulyNetCore/RPC/RPCClientMachine.swift):
// hello on every (re)connect, requests held until greeted, a new server (or one that forgot us)
// holding requests until the owner has restored, retry with back-off, deadlines, close. Fake
// clock, no sockets, no sleeps. Frames are compared as text.

// MARK: - Harness

private let clientTestTimeouts = Timeouts(aliveMs: 3000, unusedContainerMs: 5000, pingIntervalMs: 1000,
                                          requestMs: 10_000, tickMs: 100)

/// An output of the machine in a comparable form (frames as text).
private enum ClientOut: Equatable {
    case send([String])
    case connected(String, Greeting)
    case complete(RPCRequestKey, Result<String, RPCFailure>)
    case event(String)
    case request(method: String, params: JSONValue, reqId: String)
    case wake(Int)
    case log(LogLevel)

    init(_ output: RPCClientOutput) {
        switch output {
        case .send(let frames): self = .send(frames.map(\.frameText))
        case .connected(let id, let greeting): self = .connected(id, greeting)
        case .complete(let key, let result): self = .complete(key, result.map(\.frameText))
        case .event(let payload): self = .event(payload.frameText)
        case .request(let call, let reqId): self = .request(method: call.method, params: (try? call.params()) ?? "unparsable", reqId: reqId.frameText)
        case .wake(let ms): self = .wake(ms)
        case .log(let level, _): self = .log(level)
        }
    }
}

/// Drives an `RPCClientMachine` as its shell would, on a fake clock; each step returns what the
/// machine output for it.
private final class ClientHarness {
    let machine: RPCClientMachine
    var now: Int64 = 10_000

    init(clientId: ClientUUID = "c1", aliveTimeoutSeconds: Double? = nil) {
        machine = RPCClientMachine(clientId: clientId, timeouts: clientTestTimeouts, aliveTimeoutSeconds: aliveTimeoutSeconds)
    }

    private func collect(_ body: (inout [RPCClientOutput]) -> Void) -> [ClientOut] {
        var out: [RPCClientOutput] = []
        body(&out)
        return out.map(ClientOut.init)
    }

    @discardableResult
    func connect() -> [ClientOut] { collect { machine.socketConnected(into: &$0) } }

    func disconnect() { machine.socketDisconnected() }

    @discardableResult
    func receive(_ message: ServerMessage) -> [ClientOut] { collect { machine.receive(message, now: now, into: &$0) } }

    /// The socket connects and the server answers hello.
    @discardableResult
    func greet(_ serverId: String) -> [ClientOut] {
        connect()
        return receive(.hello(serverId: serverId))
    }

    /// A request; returns its key and the outputs.
    @discardableResult
    func request(_ payload: String = #"["al",{}]"#, timeoutMs: Int64? = nil, restores: Bool = false) -> (key: RPCRequestKey, out: [ClientOut]) {
        var key = 0
        let out = collect {
            key = machine.request(payload: Array(payload.utf8), timeoutMs: timeoutMs, restores: restores, now: now, into: &$0)
        }
        return (key, out)
    }

    @discardableResult
    func respond(_ reqId: String, _ payload: String) -> [ClientOut] {
        receive(.response(reqId: Array(reqId.utf8), payload: Array(payload.utf8)))
    }

    @discardableResult
    func resendPending() -> [ClientOut] { collect { machine.resendPending(into: &$0) } }

    @discardableResult
    func tick(at time: Int64) -> [ClientOut] {
        now = time
        return collect { machine.tick(now: now, into: &$0) }
    }

    @discardableResult
    func close() -> [ClientOut] { collect { machine.close(into: &$0) } }
}

private let pingFrames = ClientOut.send(["5", "", "", ""])

private func helloFrames(_ client: ClientUUID = "c1", aliveTimeout: String = "3") -> ClientOut {
    .send(["0", client, #"{"aliveTimeout":\#(aliveTimeout)}"#, ""])
}

private func requestFrames(_ reqId: String, _ payload: String = #"["al",{}]"#) -> ClientOut {
    .send(["1", reqId, payload])
}

/// The ids of the requests (op 1) sent among these outputs, in order.
private func requestsSent(_ out: [ClientOut]) -> [String] {
    out.compactMap { if case .send(let frames) = $0, frames.first == "1" { return frames[1] } else { return nil } }
}

// MARK: - Tests

final class RPCClientMachineTests: XCTestCase {

    // MARK: hello

    func testSocketConnectedSaysHelloWithTheAliveTimeout() {
        XCTAssertEqual(ClientHarness().connect(), [helloFrames()])
        XCTAssertEqual(ClientHarness(clientId: "c7", aliveTimeoutSeconds: 1.5).connect(), [helloFrames("c7", aliveTimeout: "1.5")])
    }

    func testRequestsWaitForTheHelloAnswerAndGoThen() {
        let h = ClientHarness()
        XCTAssertEqual(h.request(#"["ak",{}]"#).out, [], "not connected: the request waits")
        XCTAssertEqual(h.connect(), [helloFrames()])
        XCTAssertEqual(h.request(#"["al",{}]"#).out, [], "hello not answered yet: still waits")
        XCTAssertFalse(h.machine.isConnected)
        XCTAssertEqual(h.receive(.hello(serverId: "S1")),
                       [.connected("S1", .first),
                        requestFrames("c1-1", #"["ak",{}]"#), requestFrames("c1-2", #"["al",{}]"#)])
        XCTAssertTrue(h.machine.isConnected)
    }

    func testARequestOnceGreetedGoesAtOnceWithTheIdClientDashKey() {
        let h = ClientHarness()
        h.greet("S1")
        XCTAssertEqual(h.request().out, [requestFrames("c1-1")])
        XCTAssertEqual(h.request(#"["cs",["u1","op",1]]"#).out, [requestFrames("c1-2", #"["cs",["u1","op",1]]"#)])
    }

    func testTheSameHelloAnswerAgainIsIgnored() {
        let h = ClientHarness()
        h.greet("S1")
        h.request()
        XCTAssertEqual(h.receive(.hello(serverId: "S1")), [], "no second connected, nothing resent")
    }

    func testReconnectToTheSameServerIsNotARestartAndUnsentRequestsGoAtOnce() {
        let h = ClientHarness()
        h.greet("S1")
        h.request() // c1-1, sent to S1
        h.disconnect()
        XCTAssertFalse(h.machine.isConnected)
        XCTAssertEqual(h.request().out, [], "c1-2 waits for the hello")
        XCTAssertEqual(h.greet("S1"), [.connected("S1", .same), requestFrames("c1-2")],
                       "c1-1 went to this server already")
        XCTAssertFalse(h.machine.restoring)
    }

    /// A new server id: the owner restores its state first; meanwhile other requests wait (not
    /// sent, not resent) except the ones that restore, which go at once.
    func testANewServerIdIsARestartThatHoldsRequestsUntilResendPending() {
        let h = ClientHarness()
        h.greet("S1")
        h.request() // c1-1 sent to S1, never answered
        h.disconnect()
        h.request() // c1-2 waits
        XCTAssertEqual(h.greet("S2"), [.connected("S2", .newServer)])
        XCTAssertTrue(h.machine.restoring)
        XCTAssertEqual(h.request().out, [], "c1-3 waits for the restore")
        XCTAssertEqual(h.request(#"["ar",{}]"#, restores: true).out, [requestFrames("c1-4", #"["ar",{}]"#)])
        XCTAssertEqual(h.tick(at: h.now + 5000).filter { $0 != pingFrames }, [], "a tick sends nothing held")
        XCTAssertEqual(h.resendPending(), [requestFrames("c1-1"), requestFrames("c1-2"), requestFrames("c1-3")],
                       "in order, ids unchanged; c1-4 went to S2 already")
        XCTAssertFalse(h.machine.restoring)
        XCTAssertEqual(h.resendPending(), [], "nothing is sent twice to one server")
    }

    func testAskHelloSaysHelloAgainAndTheAnswerCountsAsARestart() {
        let h = ClientHarness()
        h.greet("S1")
        XCTAssertEqual(h.receive(.askHello(serverId: "S1")), [helloFrames()])
        XCTAssertFalse(h.machine.isConnected)
        XCTAssertEqual(h.receive(.askHello(serverId: "S1")), [], "one hello is on its way already")
        XCTAssertEqual(h.request().out, [], "waits for the hello answer")
        XCTAssertEqual(h.receive(.hello(serverId: "S1")), [.connected("S1", .forgotten)],
                       "the same server id, but it forgot us: restore")
        XCTAssertEqual(h.resendPending(), [requestFrames("c1-1")])
    }

    /// An askHello that arrives on a new connection before the hello answer answers a ping that
    /// overtook the hello (pings queued while disconnected go first): a hello is on its way, and
    /// the askHello says nothing of whether the server still knows this client. Ignored.
    func testAskHelloBeforeTheHelloAnswerOfAReconnectIsIgnored() {
        let h = ClientHarness()
        h.greet("S1")
        h.disconnect()
        XCTAssertEqual(h.connect(), [helloFrames()])
        XCTAssertEqual(h.receive(.askHello(serverId: "S1")), [], "no second hello")
        XCTAssertEqual(h.receive(.hello(serverId: "S1")), [.connected("S1", .same)])
    }

    /// A hulynet server says in its hello answer whether the client id is new to it: a client
    /// that reconnects learns whether it was dropped meanwhile (its agents' containers given to
    /// others), whatever askHello it saw or missed.
    func testAHulynetServerSaysWhetherItDroppedTheClient() {
        let h = ClientHarness()
        h.greet("S1")
        h.disconnect()
        h.connect()
        XCTAssertEqual(h.receive(.hello(serverId: "S1", newClient: false)), [.connected("S1", .same)])
        h.disconnect()
        h.connect()
        XCTAssertEqual(h.receive(.hello(serverId: "S1", newClient: true)), [.connected("S1", .forgotten)])
        XCTAssertTrue(h.machine.restoring)
        // An askHello while greeted, then the answer that it knows us after all: not dropped.
        h.receive(.askHello(serverId: "S1"))
        XCTAssertEqual(h.receive(.hello(serverId: "S1", newClient: false)), [.connected("S1", .same)])
    }

    /// A reconnect to the same server while the owner restores keeps the restore going: held
    /// requests stay held until `resendPending`, and the restore's own unsent requests go.
    func testAReconnectToTheSameServerDuringARestoreKeepsTheHold() {
        let h = ClientHarness()
        h.greet("S1")
        h.disconnect()
        h.greet("S2")
        XCTAssertTrue(h.machine.restoring)
        h.request(#"["ar",{}]"#, restores: true) // c1-1, sent to S2
        h.request() // c1-2, held
        h.disconnect()
        h.request(#"["gg",{}]"#, restores: true) // c1-3, waits for a server
        XCTAssertEqual(h.greet("S2"), [.connected("S2", .same), requestFrames("c1-3", #"["gg",{}]"#)])
        XCTAssertTrue(h.machine.restoring)
        XCTAssertEqual(h.resendPending(), [requestFrames("c1-2")])
    }

    // MARK: answers

    func testResponsesAreMatchedByTheirId() {
        let h = ClientHarness()
        h.greet("S1")
        let first = h.request().key
        let second = h.request().key
        XCTAssertEqual(h.respond("c1-2", "\"two\""), [.complete(second, .success("\"two\""))])
        XCTAssertEqual(h.respond("c1-1", "1"), [.complete(first, .success("1"))])
        XCTAssertEqual(h.machine.pendingCount, 0)
        XCTAssertEqual(h.respond("c1-1", "again"), [], "answered once")
    }

    func testAResponseToAnUnknownOrForeignIdIsIgnored() {
        let h = ClientHarness()
        h.greet("S1")
        h.request()
        for reqId in ["c1-2", "c2-1", "c1-", "c1", "c1-1x", "x-c1-1", "c1--1", ""] {
            XCTAssertEqual(h.respond(reqId, "1"), [], reqId)
            XCTAssertEqual(h.receive(.responseError(reqId: Array(reqId.utf8), payload: Array("{}".utf8))), [], reqId)
            XCTAssertEqual(h.receive(.retry(reqId: Array(reqId.utf8), inFlight: 3)), [], reqId)
        }
        XCTAssertEqual(h.machine.pendingCount, 1)
    }

    func testAResponseErrorCompletesWithTheRemoteErrorAndItsCode() {
        let h = ClientHarness()
        h.greet("S1")
        let coded = h.request().key
        let reference = h.request().key
        let own = h.request().key
        XCTAssertEqual(h.receive(.responseError(reqId: Array("c1-1".utf8),
                                                payload: RemoteError("late", code: .timeout).payload)),
                       [.complete(coded, .failure(.remote(RemoteError("late", code: .timeout))))])
        XCTAssertEqual(h.receive(.responseError(reqId: Array("c1-2".utf8),
                                                payload: Array(#"{"message":"Container u1 not found","stack":""}"#.utf8))),
                       [.complete(reference, .failure(.remote(RemoteError("Container u1 not found", code: .containerNotFound))))])
        XCTAssertEqual(h.receive(.responseError(reqId: Array("c1-3".utf8), payload: RemoteError("bad input").payload)),
                       [.complete(own, .failure(.remote(RemoteError("bad input"))))])
    }

    func testACancelledRequestsAnswerIsIgnored() {
        let h = ClientHarness()
        h.greet("S1")
        let key = h.request(timeoutMs: 100).key
        h.machine.cancel(key)
        XCTAssertEqual(h.respond("c1-\(key)", "1"), [])
        XCTAssertEqual(h.tick(at: h.now + 200).filter { $0 != pingFrames }, [], "no timeout either")
        XCTAssertEqual(h.machine.pendingCount, 0)
    }

    // MARK: retry

    /// Retry: resent with the same id after 2 ms per request the server has in flight (1 to
    /// 100), announced with a wake; not before.
    func testARetriedRequestIsResentAfterTheBackOff() {
        let h = ClientHarness()
        h.greet("S1")
        h.tick(at: h.now) // the first ping
        let start = h.now
        h.request()
        XCTAssertEqual(h.receive(.retry(reqId: Array("c1-1".utf8), inFlight: 25)), [.wake(50)])
        XCTAssertEqual(h.tick(at: start + 49), [])
        XCTAssertEqual(h.tick(at: start + 50), [requestFrames("c1-1")])
        XCTAssertEqual(h.tick(at: start + 100), [], "resent once")
        XCTAssertEqual(h.respond("c1-1", "1"), [.complete(1, .success("1"))])
    }

    func testTheBackOffIsBoundedOnBothSides() {
        let h = ClientHarness()
        h.greet("S1")
        h.request()
        XCTAssertEqual(h.receive(.retry(reqId: Array("c1-1".utf8), inFlight: 0)), [.wake(2)])
        XCTAssertEqual(h.receive(.retry(reqId: Array("c1-1".utf8), inFlight: 5000)), [.wake(200)])
    }

    /// A retry answered while the owner restores waits for the restore, then goes at the next
    /// tick (the server asked for hello: it refused the request as unknown and forgot us).
    func testARetryWhileRestoringWaitsForTheRestore() {
        let h = ClientHarness()
        h.greet("S1")
        h.tick(at: h.now)
        let start = h.now
        h.request()
        h.receive(.retry(reqId: Array("c1-1".utf8), inFlight: 1))
        h.receive(.askHello(serverId: "S1"))
        h.receive(.hello(serverId: "S1"))
        XCTAssertTrue(h.machine.restoring)
        XCTAssertEqual(h.tick(at: start + 10), [], "due, but the restore is not done")
        XCTAssertEqual(requestsSent(h.resendPending() + h.tick(at: start + 20)), ["c1-1"])
    }

    // MARK: deadlines

    func testARequestPastItsDeadlineCompletesWithATimeout() {
        let h = ClientHarness()
        h.greet("S1")
        h.tick(at: h.now)
        let start = h.now
        let short = h.request(timeoutMs: 500).key
        let standard = h.request().key
        XCTAssertEqual(h.tick(at: start + 499), [])
        XCTAssertEqual(h.tick(at: start + 500), [.complete(short, .failure(.timeout("no answer within 500 ms")))])
        XCTAssertEqual(h.respond("c1-\(short)", "1"), [], "a late answer is ignored")
        XCTAssertEqual(h.tick(at: start + 10_000).filter { $0 != pingFrames },
                       [.complete(standard, .failure(.timeout("no answer within 10000 ms")))], "the default is requestMs")
    }

    func testADeadlineRunsWhileTheRequestWaitsForAServer() {
        let h = ClientHarness()
        h.tick(at: h.now)
        let start = h.now
        let key = h.request(timeoutMs: 300).key
        XCTAssertEqual(h.tick(at: start + 300), [.complete(key, .failure(.timeout("no answer within 300 ms")))])
        XCTAssertEqual(requestsSent(h.greet("S1")), [], "a request that timed out is not sent late")
    }

    // MARK: pings, events, the server's requests

    func testAPingGoesEveryPingInterval() {
        let h = ClientHarness()
        h.greet("S1")
        let start = h.now
        XCTAssertEqual(h.tick(at: start), [pingFrames])
        XCTAssertEqual(h.tick(at: start + 999), [])
        XCTAssertEqual(h.tick(at: start + 1000), [pingFrames])
        XCTAssertEqual(h.tick(at: start + 1500), [])
        XCTAssertEqual(h.tick(at: start + 2000), [pingFrames])
        XCTAssertEqual(h.receive(.pong(serverId: "S1")), [])
    }

    func testAnEventIsHandedToTheOwner() {
        let h = ClientHarness()
        h.greet("S1")
        XCTAssertEqual(h.receive(.event(payload: Array(#"{"agents":[]}"#.utf8))), [.event(#"{"agents":[]}"#)])
    }

    func testAServerRequestIsHandedToTheOwnerAndAnsweredWithRespond() throws {
        let h = ClientHarness()
        h.greet("S1")
        XCTAssertEqual(h.receive(.request(reqId: Array("c1-ab-1".utf8), payload: Array(#"["gg",["A1",["k",{}]]]"#.utf8))),
                       [.request(method: "gg", params: ["A1", ["k", [:]]], reqId: "c1-ab-1")])
        XCTAssertEqual(h.receive(.request(reqId: Array("c1-ab-2".utf8), payload: Array(#"["ak"]"#.utf8))),
                       [.request(method: "ak", params: .null, reqId: "c1-ab-2")])
        var out: [RPCClientOutput] = []
        h.machine.respond(Array("c1-ab-1".utf8), .success(Array(#"["u1","ep"]"#.utf8)), into: &out)
        h.machine.respond(Array("c1-ab-2".utf8), .failure(RemoteError("Agent A1 not found", code: .agentGone)), into: &out)
        let sent = out.map(ClientOut.init)
        XCTAssertEqual(sent.first, .send(["2", "c1-ab-1", #"["u1","ep"]"#]))
        guard case .send(let frames)? = sent.last else { return XCTFail("\(sent)") }
        XCTAssertEqual(Array(frames.prefix(2)), ["3", "c1-ab-2"])
        XCTAssertEqual(RemoteError(payload: Array(frames[2].utf8)), RemoteError("Agent A1 not found", code: .agentGone))
    }

    func testAServerRequestThatIsNotMethodAndParamsIsAnsweredInvalid() {
        let h = ClientHarness()
        h.greet("S1")
        for payload in ["nonsense", "{}", "[]", "[1]"] {
            let out = h.receive(.request(reqId: Array("s-1".utf8), payload: Array(payload.utf8)))
            guard case .send(let frames)? = out.first, out.count == 1 else { XCTFail("\(payload): \(out)"); continue }
            XCTAssertEqual(Array(frames.prefix(2)), ["3", "s-1"], payload)
            XCTAssertEqual(RemoteError(payload: Array(frames[2].utf8)).code, .invalid, payload)
        }
    }

    // MARK: close

    func testCloseSendsCloseAndEndsEveryPendingRequest() {
        let h = ClientHarness()
        h.greet("S1")
        let first = h.request().key
        let second = h.request().key
        XCTAssertEqual(h.close(), [.send(["8", "", "", ""]), .complete(first, .failure(.closed)), .complete(second, .failure(.closed))])
        XCTAssertTrue(h.machine.closed)
        XCTAssertFalse(h.machine.isConnected)
        XCTAssertEqual(h.close(), [], "idempotent")
        let late = h.request()
        XCTAssertEqual(late.out, [.complete(late.key, .failure(.closed))], "a request after close ends at once")
        XCTAssertEqual(h.respond("c1-1", "1"), [])
        XCTAssertEqual(h.connect(), [])
        XCTAssertEqual(h.tick(at: h.now + 5000), [])
    }
}
