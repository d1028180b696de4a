import XCTest
@testable import HulyNetCore

// Unit tests of the server side of the back-RPC protocol (Sources/HulyNetCore/RPC/RPCServerMachine.swift),
// every per-client rule of docs/PROTOCOL.md ("Rules the reference follows") on a fake clock: no
// sockets, no sleeps. Frames are compared as text.

// MARK: - Harness

private let serverTestTimeouts = Timeouts(aliveMs: 3000, unusedContainerMs: 5000, pingIntervalMs: 1000,
                                          requestMs: 10_000, tickMs: 100)
private let serverTestId = "0123abcd-4567-89ef-0123-456789abcdef"

/// An output of the machine in a comparable form (frames as text).
private enum ServerOut: Equatable {
    case send([String])
    case connected(ClientUUID)
    case gone(ClientUUID, timedOut: Bool)
    case ping(ClientUUID)
    case request(client: ClientUUID, token: RequestToken, reqId: String, method: String, params: String)
    case answered(CallID, Result<String, RemoteError>)
    case dropped(String)
    case log(LogLevel)

    init(_ output: RPCServerOutput) {
        switch output {
        case .send(let message): self = .send(message.frames.map(\.frameText))
        case .clientConnected(let client): self = .connected(client)
        case .clientGone(let client, let timedOut): self = .gone(client, timedOut: timedOut)
        case .ping(let client): self = .ping(client)
        case .request(let request):
            self = .request(client: request.client, token: request.token, reqId: request.requestId.frameText,
                            method: request.method, params: request.rawParams.frameText)
        case .callAnswered(let id, let result): self = .answered(id, result.map(\.frameText))
        case .dropped(let reason): self = .dropped(reason)
        case .log(let level, _): self = .log(level)
        }
    }
}

/// Drives an `RPCServerMachine` with client messages by routing identity ("idA", ...) and a
/// fake clock; each step returns what the machine output for it.
private final class ServerHarness {
    let machine: RPCServerMachine
    var now: Int64 = 50_000

    init(serverId: String = serverTestId, inFlightLimit: Int = defaultInFlightLimit) {
        machine = RPCServerMachine(serverId: serverId, timeouts: serverTestTimeouts, inFlightLimit: inFlightLimit)
    }

    private func collect(_ body: (inout [RPCServerOutput]) -> Void) -> [ServerOut] {
        var out: [RPCServerOutput] = []
        body(&out)
        return out.map(ServerOut.init)
    }

    @discardableResult
    func receive(_ identity: String, _ message: ClientMessage) -> [ServerOut] {
        collect { machine.receive(identity: Array(identity.utf8), message, now: now, into: &$0) }
    }

    @discardableResult
    func hello(_ identity: String, _ client: ClientUUID, aliveMs: Int64? = nil) -> [ServerOut] {
        receive(identity, .hello(clientId: client, aliveTimeoutMs: aliveMs))
    }

    @discardableResult
    func request(_ identity: String, _ reqId: String, _ payload: String = #"["m",{"a":1}]"#) -> [ServerOut] {
        receive(identity, .request(reqId: Array(reqId.utf8), payload: Array(payload.utf8)))
    }

    /// Sends a request and returns its token (fails the test if it was not handed to the owner).
    func token(_ identity: String, _ reqId: String, file: StaticString = #filePath, line: UInt = #line) -> RequestToken {
        for case .request(_, let token, _, _, _) in request(identity, reqId) { return token }
        XCTFail("request \(reqId) was not handed to the owner", file: file, line: line)
        return 0
    }

    @discardableResult
    func reply(_ token: RequestToken, _ payload: String = "true") -> [ServerOut] {
        collect { machine.reply(token, Array(payload.utf8), into: &$0) }
    }

    @discardableResult
    func fail(_ token: RequestToken, _ error: RemoteError) -> [ServerOut] {
        collect { machine.fail(token, error, into: &$0) }
    }

    /// Calls `client` and returns the request id the machine gave the call.
    func call(_ client: ClientUUID, id: CallID, payload: String = #"["cs",["A1",["u1","op",1]]]"#) -> (sent: Bool, reqId: String?) {
        var sent = false
        let out = collect { sent = machine.call(client, id: id, payload: Array(payload.utf8), now: now, into: &$0) }
        for case .send(let frames) in out where frames.count == 4 && frames[1] == "1" { return (sent, frames[2]) }
        return (sent, nil)
    }

    @discardableResult
    func tick(at time: Int64) -> [ServerOut] {
        now = time
        return collect { machine.tick(now: now, into: &$0) }
    }

    @discardableResult
    func close() -> [ServerOut] { collect { machine.close(into: &$0) } }
}

/// The responseError a list of outputs holds for this identity and request id, decoded.
private func responseError(_ out: [ServerOut], to identity: String, reqId: String) -> RemoteError? {
    for case .send(let frames) in out where frames.count == 4 && frames[0] == identity && frames[1] == "3" && frames[2] == reqId {
        return RemoteError(payload: Array(frames[3].utf8))
    }
    return nil
}

/// The hello answer: the server id, and whether the client id is new to this server run.
private func helloAnswer(_ identity: String, new: Bool) -> ServerOut {
    .send([identity, "0", serverTestId, new ? #"{"new":true}"# : #"{"new":false}"#])
}
private func pong(_ identity: String) -> ServerOut { .send([identity, "6", serverTestId, ""]) }
private func askHello(_ identity: String) -> ServerOut { .send([identity, "9", serverTestId, ""]) }

// MARK: - Tests

final class RPCServerMachineTests: XCTestCase {

    // MARK: hello

    func testHelloOfANewClientIsAnsweredWithTheServerIdAndReportsItConnected() {
        let h = ServerHarness()
        XCTAssertEqual(h.hello("idA", "c1"), [helloAnswer("idA", new: true), .log(.debug), .connected("c1")])
        XCTAssertTrue(h.machine.isConnected("c1"))
        XCTAssertEqual(h.machine.clientCount, 1)
    }

    func testHelloAgainIsAnsweredButTheClientIsNotReportedAgain() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        XCTAssertEqual(h.hello("idA", "c1"), [helloAnswer("idA", new: false)])
        XCTAssertEqual(h.hello("idB", "c1"), [helloAnswer("idB", new: false)], "the same client on a new connection is not new")
        XCTAssertEqual(h.machine.clientCount, 1)
    }

    /// A reconnecting DEALER gets a new identity: its requests in flight stay its own (a resend
    /// is still a duplicate) and their answers go to where it is now.
    func testSameClientOnANewIdentityKeepsItsRequestsInFlight() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let token = h.token("idA", "c1-1")
        h.hello("idB", "c1")
        XCTAssertEqual(h.request("idB", "c1-1"), [], "still in flight: the resend is not run twice")
        XCTAssertEqual(h.reply(token, "7"), [.send(["idB", "2", "c1-1", "7"])])
        XCTAssertEqual(h.receive("idA", .ping), [pong("idA"), askHello("idA")], "the old identity is forgotten")
        XCTAssertEqual(h.machine.clientCount, 1)
    }

    func testOneIdentitySayingHelloWithAnotherClientIdDropsTheOldId() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        XCTAssertEqual(h.hello("idA", "c2"), [.gone("c1", timedOut: false), helloAnswer("idA", new: true), .log(.debug), .connected("c2")])
        XCTAssertFalse(h.machine.isConnected("c1"))
        XCTAssertTrue(h.machine.isConnected("c2"))
        XCTAssertEqual(h.receive("idA", .ping), [pong("idA"), .ping("c2")])
    }

    // MARK: ping

    func testPingOfAKnownClientIsAnsweredPongAndReported() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        XCTAssertEqual(h.receive("idA", .ping), [pong("idA"), .ping("c1")])
        XCTAssertEqual(h.machine.stats.pings, 1)
    }

    func testPingOfAnUnknownIdentityIsAnsweredPongThenAskHello() {
        let h = ServerHarness()
        XCTAssertEqual(h.receive("idX", .ping), [pong("idX"), askHello("idX")])
        XCTAssertEqual(h.machine.clientCount, 0, "a ping is not a hello")
    }

    // MARK: requests

    func testRequestBeforeHelloIsAnsweredRetryOne() {
        let h = ServerHarness()
        XCTAssertEqual(h.request("idX", "c9-1"), [.send(["idX", "7", "c9-1", "1"])])
        XCTAssertEqual(h.machine.pendingCount, 0)
    }

    func testRequestIsHandedToTheOwnerWithItsMethodAndParams() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let out = h.request("idA", "c1-5", #"[ "gg" , {"kind":"k"} ]"#)
        XCTAssertEqual(out, [.request(client: "c1", token: 1, reqId: "c1-5", method: "gg", params: #"{"kind":"k"}"#)])
        XCTAssertEqual(h.machine.pendingCount, 1)
        XCTAssertEqual(h.machine.stats.requests, 1)
    }

    func testRequestWithoutParamsHasNullParams() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        var out: [RPCServerOutput] = []
        h.machine.receive(identity: Array("idA".utf8), .request(reqId: Array("c1-1".utf8), payload: Array(#"["al"]"#.utf8)),
                          now: h.now, into: &out)
        guard case .request(let request)? = out.first else { return XCTFail("no request: \(out)") }
        XCTAssertEqual(request.method, "al")
        XCTAssertEqual(try request.params(), .null)
    }

    func testDuplicateRequestIdStillInFlightIsIgnored() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let token = h.token("idA", "c1-1")
        XCTAssertEqual(h.request("idA", "c1-1"), [])
        XCTAssertEqual(h.machine.pendingCount, 1, "not run twice")
        h.reply(token)
        // Answered: the same id is a new request again (the client resent it after losing the answer).
        XCTAssertEqual(h.request("idA", "c1-1").count, 1)
        XCTAssertEqual(h.machine.pendingCount, 1)
    }

    func testTheSameRequestIdOfAnotherClientIsAnotherRequest() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        _ = h.token("idA", "r-1")
        XCTAssertEqual(h.request("idB", "r-1").count, 1)
        XCTAssertEqual(h.machine.pendingCount, 2)
    }

    /// At most 25 in flight per client: the 26th is answered retry with the count in flight (the
    /// reference lets 26 through; hulynet does not).
    func testTheTwentySixthRequestInFlightIsAnsweredRetryWithTheCount() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        for n in 1...25 { _ = h.token("idA", "c1-\(n)") }
        XCTAssertEqual(h.request("idA", "c1-26"), [.send(["idA", "7", "c1-26", "25"])])
        XCTAssertEqual(h.machine.pendingCount, 25)
        // The refused one holds no place: refused again while 25 remain.
        XCTAssertEqual(h.request("idA", "c1-26"), [.send(["idA", "7", "c1-26", "25"])])
    }

    func testTheInFlightLimitIsPerClient() {
        let h = ServerHarness(inFlightLimit: 2)
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        _ = h.token("idA", "c1-1")
        _ = h.token("idA", "c1-2")
        XCTAssertEqual(h.request("idA", "c1-3"), [.send(["idA", "7", "c1-3", "2"])])
        XCTAssertEqual(h.request("idB", "c2-1").count, 1)
        XCTAssertEqual(h.request("idB", "c2-2").count, 1)
    }

    func testReplyAndFailEachFreeAPlaceOfTheLimit() {
        let h = ServerHarness(inFlightLimit: 2)
        h.hello("idA", "c1")
        let first = h.token("idA", "c1-1")
        let second = h.token("idA", "c1-2")
        XCTAssertEqual(h.request("idA", "c1-3").first, .send(["idA", "7", "c1-3", "2"]))
        h.reply(first)
        _ = h.token("idA", "c1-3")
        XCTAssertEqual(h.request("idA", "c1-4").first, .send(["idA", "7", "c1-4", "2"]))
        h.fail(second, RemoteError("no"))
        _ = h.token("idA", "c1-4")
    }

    func testReplySendsTheAnswerAndFailSendsTheErrorWithItsCode() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let first = h.token("idA", "c1-1")
        let second = h.token("idA", "c1-2")
        XCTAssertEqual(h.reply(first, #"["u1","ep"]"#), [.send(["idA", "2", "c1-1", #"["u1","ep"]"#])])
        let out = h.fail(second, RemoteError("Container u9 not found", code: .containerNotFound))
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(responseError(out, to: "idA", reqId: "c1-2"), RemoteError("Container u9 not found", code: .containerNotFound))
        XCTAssertEqual(h.machine.pendingCount, 0)
        // A token answered once (or never given) answers nothing.
        XCTAssertEqual(h.reply(first), [])
        XCTAssertEqual(h.fail(second, RemoteError("again")), [])
        XCTAssertEqual(h.reply(999), [])
    }

    func testPayloadThatIsNotJSONIsAnsweredInvalidAndHoldsNoPlace() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        for payload in [#"["m","#, "{}", "nonsense", ""] {
            let out = h.request("idA", "c1-1", payload)
            let error = try XCTUnwrap(responseError(out, to: "idA", reqId: "c1-1"), "payload \(payload)")
            XCTAssertEqual(error.code, .invalid, "payload \(payload)")
            XCTAssertTrue(error.message.hasPrefix("request payload is not valid JSON"), error.message)
            XCTAssertEqual(out.count, 2)
            XCTAssertEqual(out.first, .dropped("request payload not valid JSON"), "counted for the periodic summary")
        }
        XCTAssertEqual(h.machine.stats.malformed, 4)
        XCTAssertEqual(h.machine.pendingCount, 0)
        XCTAssertEqual(h.request("idA", "c1-1").count, 1, "the id is free again")
    }

    func testPayloadThatIsNotMethodAndParamsIsAnsweredInvalid() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        for payload in ["[]", "[1,2]", #"[null,"m"]"#, #"[["m"]]"#] {
            let out = h.request("idA", "c1-1", payload)
            let error = try XCTUnwrap(responseError(out, to: "idA", reqId: "c1-1"), "payload \(payload)")
            XCTAssertEqual(error, RemoteError("request payload must be [method, params]", code: .invalid), "payload \(payload)")
        }
        XCTAssertEqual(h.machine.pendingCount, 0)
    }

    // MARK: deadlines and alive timeouts

    func testARequestPastItsDeadlineFailsWithTimeoutOnTick() throws {
        let h = ServerHarness(inFlightLimit: 1)
        h.hello("idA", "c1", aliveMs: 60_000)
        let start = h.now
        let token = h.token("idA", "c1-1")
        XCTAssertEqual(h.tick(at: start + 9_999), [])
        let out = h.tick(at: start + 10_000)
        let error = try XCTUnwrap(responseError(out, to: "idA", reqId: "c1-1"))
        XCTAssertEqual(error.code, .timeout)
        XCTAssertEqual(h.machine.pendingCount, 0)
        XCTAssertEqual(h.reply(token), [], "a late answer is not sent: the client has its error")
        XCTAssertEqual(h.request("idA", "c1-2").count, 1, "its place of the limit is free")
    }

    /// Each client is dropped after its own alive timeout (from its hello), checked on tick.
    func testAClientSilentPastItsOwnAliveTimeoutIsDropped() {
        let h = ServerHarness()
        let start = h.now
        h.hello("idA", "c1", aliveMs: 500)
        h.hello("idB", "c2") // the server's default: 3000
        XCTAssertEqual(h.tick(at: start + 500), [])
        XCTAssertEqual(h.tick(at: start + 501), [.log(.info), .gone("c1", timedOut: true)])
        XCTAssertFalse(h.machine.isConnected("c1"))
        XCTAssertEqual(h.tick(at: start + 3000), [])
        XCTAssertEqual(h.tick(at: start + 3001), [.log(.info), .gone("c2", timedOut: true)])
        XCTAssertEqual(h.machine.clientCount, 0)
    }

    func testAnyMessageKeepsAClientAlive() {
        let h = ServerHarness()
        let start = h.now
        h.hello("idA", "c1", aliveMs: 500)
        h.now = start + 400
        h.receive("idA", .ping)
        h.now = start + 800
        h.request("idA", "c1-1")
        h.now = start + 1200
        h.receive("idA", .event(payload: Array("{}".utf8)))
        XCTAssertEqual(h.tick(at: start + 1700), [])
        XCTAssertEqual(h.tick(at: start + 1701), [.log(.info), .gone("c1", timedOut: true)])
    }

    func testCloseDropsTheClientAtOnce() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        XCTAssertEqual(h.receive("idA", .close), [.gone("c1", timedOut: false)])
        XCTAssertFalse(h.machine.isConnected("c1"))
        XCTAssertEqual(h.request("idA", "c1-1"), [.send(["idA", "7", "c1-1", "1"])], "it must say hello again")
        XCTAssertEqual(h.receive("idZ", .close), [], "close of an unknown identity changes nothing")
    }

    // MARK: the server's calls to clients

    /// "<clientId>-<run>-<key>": the run is the first 8 hex digits of the server id; the key names
    /// the call's place in the server's table (1, 2, 3... while none was answered).
    func testCallIdsAreTheClientTheRunAndACounter() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        XCTAssertEqual(h.call("c1", id: 7).reqId, "c1-0123abcd-1")
        XCTAssertEqual(h.call("c2", id: 8).reqId, "c2-0123abcd-2")
        XCTAssertEqual(h.call("c1", id: 9).reqId, "c1-0123abcd-3")
    }

    func testCallGoesToTheClientsIdentityWithThePayload() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        var out: [RPCServerOutput] = []
        XCTAssertTrue(h.machine.call("c1", id: 1, payload: Array(#"["ct",["A1",["u1"]]]"#.utf8), now: h.now, into: &out))
        XCTAssertEqual(out.map(ServerOut.init), [.send(["idA", "1", "c1-0123abcd-1", #"["ct",["A1",["u1"]]]"#])])
    }

    /// Two runs of a server (a restart) never give two calls the same id, even to the same
    /// client with the same counter: a late answer to the dead run's call completes nothing.
    func testCallIdsDifferBetweenTwoServerRuns() {
        let first = ServerHarness(serverId: makeUUID())
        let second = ServerHarness(serverId: makeUUID())
        first.hello("idA", "c1")
        second.hello("idA", "c1")
        let old = first.call("c1", id: 1).reqId
        let new = second.call("c1", id: 1).reqId
        XCTAssertNotNil(old)
        XCTAssertNotEqual(old, new)
        XCTAssertEqual(second.receive("idA", .response(reqId: Array(old!.utf8), payload: Array("1".utf8))), [])
        XCTAssertEqual(second.receive("idA", .response(reqId: Array(new!.utf8), payload: Array("2".utf8))),
                       [.answered(1, .success("2"))])
    }

    func testACallIsAnsweredOnlyByTheClientItWentTo() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        let reqId = try XCTUnwrap(h.call("c1", id: 42).reqId)
        XCTAssertEqual(h.receive("idB", .response(reqId: Array(reqId.utf8), payload: Array("\"forged\"".utf8))), [])
        XCTAssertEqual(h.receive("idX", .response(reqId: Array(reqId.utf8), payload: Array("\"stranger\"".utf8))), [])
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("\"real\"".utf8))),
                       [.answered(42, .success("\"real\""))])
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("\"again\"".utf8))), [],
                       "answered once")
        XCTAssertEqual(h.machine.stats.responses, 1)
    }

    /// The key is read back from the answer's id: anything but the exact id the server gave, or
    /// an id of a call already answered (whose place another call took since), is ignored.
    func testAnAnswerWithAnIdTheServerDidNotGiveIsIgnored() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        let first = try XCTUnwrap(h.call("c1", id: 1).reqId)
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(first.utf8), payload: Array("1".utf8))),
                       [.answered(1, .success("1"))])
        let second = try XCTUnwrap(h.call("c1", id: 2).reqId)
        XCTAssertNotEqual(second, first, "the place is reused under a new key")
        let forged = ["c1-0123abcd-", "c1-0123abcd-01", "c1-0123abcd-1x", "c1-0123abcd--1", "c1-0123abcd-99999999999999999999",
                      "c1-0123abcd-18446744073709551616", "c2-0123abcd-1", "c1-0123abce-1", "c1-0123abcd", "1", first,
                      "c1-0123abcd-9223372041149743105", String(second.dropLast())]
        for reqId in forged {
            XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("0".utf8))), [], reqId)
        }
        XCTAssertEqual(h.receive("idB", .response(reqId: Array(second.utf8), payload: Array("0".utf8))), [], "another client")
        XCTAssertEqual(h.machine.callCount, 1)
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(second.utf8), payload: Array("2".utf8))),
                       [.answered(2, .success("2"))])
        XCTAssertEqual(h.machine.callCount, 0)
    }

    /// Tokens of requests already answered (or timed out) find nothing, even once their place
    /// in the table holds another request: a late reply cannot answer the wrong one.
    func testAStaleTokenAnswersNothing() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let first = h.token("idA", "r-1")
        XCTAssertEqual(h.reply(first, "1"), [.send(["idA", "2", "r-1", "1"])])
        let second = h.token("idA", "r-2")
        XCTAssertNotEqual(second, first)
        XCTAssertEqual(h.reply(first, "late"), [])
        XCTAssertEqual(h.machine.pendingCount, 1)
        XCTAssertEqual(h.reply(second, "2"), [.send(["idA", "2", "r-2", "2"])])
    }

    func testACallFollowsItsClientToANewIdentity() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let reqId = try XCTUnwrap(h.call("c1", id: 5).reqId)
        h.hello("idB", "c1")
        XCTAssertEqual(h.receive("idB", .response(reqId: Array(reqId.utf8), payload: Array("1".utf8))),
                       [.answered(5, .success("1"))])
    }

    func testAnErrorAnswerToACallCarriesItsCode() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let reqId = try XCTUnwrap(h.call("c1", id: 3).reqId)
        let payload = RemoteError("Container u1 not found", code: .containerNotFound).payload
        XCTAssertEqual(h.receive("idA", .responseError(reqId: Array(reqId.utf8), payload: payload)),
                       [.answered(3, .failure(RemoteError("Container u1 not found", code: .containerNotFound)))])
    }

    func testAnAnswerOfAnUnknownIdIsIgnored() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        _ = h.call("c1", id: 1)
        for reqId in ["c1-0123abcd-2", "c1-1", "", "c1-0123abcd-1x"] {
            XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("1".utf8))), [], reqId)
            XCTAssertEqual(h.receive("idA", .responseError(reqId: Array(reqId.utf8), payload: Array("{}".utf8))), [], reqId)
        }
        XCTAssertEqual(h.machine.stats.responses, 0)
    }

    func testACallToAClientNotConnectedIsRefused() {
        let h = ServerHarness()
        let result = h.call("nobody", id: 1)
        XCTAssertFalse(result.sent)
        XCTAssertNil(result.reqId)
    }

    func testClosingFailsTheOpenCallsWithAgentGone() throws {
        let h = ServerHarness()
        h.hello("idA", "c1")
        let reqId = try XCTUnwrap(h.call("c1", id: 11).reqId)
        _ = h.call("c1", id: 12)
        let out = h.close()
        XCTAssertEqual(Set(out.map { "\($0)" }),
                       Set([ServerOut.answered(11, .failure(RemoteError("server closed", code: .agentGone))),
                            ServerOut.answered(12, .failure(RemoteError("server closed", code: .agentGone)))].map { "\($0)" }))
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("1".utf8))), [])
        XCTAssertEqual(h.close(), [], "nothing is left to fail")
    }

    /// A call to a client that closes, times out or gives its identity to another client id
    /// can never be answered: it fails at once as agent gone, and is forgotten.
    func testTheCallsToAClientThatGoesFailAsAgentGone() throws {
        let h = ServerHarness()
        let start = h.now
        h.hello("idA", "c1")
        h.hello("idB", "c2", aliveMs: 500)
        h.hello("idC", "c3")
        let closed = try XCTUnwrap(h.call("c1", id: 1).reqId)
        _ = h.call("c2", id: 2)
        _ = h.call("c3", id: 3)
        let kept = try XCTUnwrap(h.call("c3", id: 4).reqId)
        XCTAssertEqual(h.machine.callCount, 4)
        XCTAssertEqual(h.receive("idA", .close),
                       [.gone("c1", timedOut: false), .answered(1, .failure(RemoteError("client c1 is gone", code: .agentGone)))])
        h.now = start + 400
        h.receive("idC", .ping)
        XCTAssertEqual(h.tick(at: start + 501),
                       [.log(.info), .gone("c2", timedOut: true), .answered(2, .failure(RemoteError("client c2 is gone", code: .agentGone)))])
        XCTAssertEqual(h.receive("idC", .response(reqId: Array(kept.utf8), payload: Array("4".utf8))), [.answered(4, .success("4"))])
        XCTAssertEqual(h.hello("idC", "c9"),
                       [.gone("c3", timedOut: false), .answered(3, .failure(RemoteError("client c3 is gone", code: .agentGone))),
                        helloAnswer("idC", new: true), .log(.debug), .connected("c9")])
        XCTAssertEqual(h.machine.callCount, 0, "nothing is kept for calls nobody can answer")
        h.hello("idA", "c1")
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(closed.utf8), payload: Array("1".utf8))), [],
                       "back with the same id, it cannot answer a call of its earlier session")
    }

    /// A client that never answers a call (a handler that hangs) does not hold it forever: the
    /// call fails with a timeout after `requestMs`, and a late answer is ignored.
    func testACallNeverAnsweredFailsWithATimeoutAtItsDeadline() throws {
        let h = ServerHarness()
        h.hello("idA", "c1", aliveMs: 60_000)
        let start = h.now
        let reqId = try XCTUnwrap(h.call("c1", id: 9).reqId)
        XCTAssertEqual(h.tick(at: start + 9_999), [])
        XCTAssertEqual(h.tick(at: start + 10_000),
                       [.answered(9, .failure(RemoteError("client c1 did not answer within 10000 ms", code: .timeout)))])
        XCTAssertEqual(h.machine.callCount, 0)
        XCTAssertEqual(h.receive("idA", .response(reqId: Array(reqId.utf8), payload: Array("1".utf8))), [])
    }

    // MARK: events

    func testEventGoesToOneClientAndBroadcastToEvery() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        h.hello("idB", "c2")
        var out: [RPCServerOutput] = []
        h.machine.event("c2", payload: Array("1".utf8), into: &out)
        h.machine.event("nobody", payload: Array("2".utf8), into: &out)
        XCTAssertEqual(out.map(ServerOut.init), [.send(["idB", "4", "", "1"])])
        out.removeAll()
        h.machine.broadcast(payload: Array("3".utf8), into: &out)
        XCTAssertEqual(Set(out.map { "\(ServerOut($0))" }),
                       Set([ServerOut.send(["idA", "4", "", "3"]), ServerOut.send(["idB", "4", "", "3"])].map { "\($0)" }))
    }

    func testAClientsEventIsIgnored() {
        let h = ServerHarness()
        h.hello("idA", "c1")
        XCTAssertEqual(h.receive("idA", .event(payload: Array("{}".utf8))), [])
    }

    // MARK: messages that are not the protocol's

    func testAMalformedRequestWithAnIdIsAnsweredInvalid() {
        let h = ServerHarness()
        var out: [RPCServerOutput] = []
        h.machine.malformed(identity: Array("idA".utf8),
                            MalformedMessage(.missingFrames, "request without a payload", reqId: Array("c1-4".utf8)), into: &out)
        let sent = out.map(ServerOut.init)
        XCTAssertEqual(sent.count, 1)
        XCTAssertEqual(responseError(sent, to: "idA", reqId: "c1-4"), RemoteError("request without a payload", code: .invalid))
        XCTAssertEqual(h.machine.stats.malformed, 1)
    }

    func testAMalformedMessageWithoutAnIdIsOnlyCounted() {
        let h = ServerHarness()
        var out: [RPCServerOutput] = []
        h.machine.malformed(identity: Array("idA".utf8), MalformedMessage(.badOp, "op \"x\""), into: &out)
        XCTAssertTrue(out.isEmpty)
        XCTAssertEqual(h.machine.stats.malformed, 1)
    }

    func testAnOversizeRequestWithAnIdIsAnsweredLimit() {
        let h = ServerHarness()
        var out: [RPCServerOutput] = []
        h.machine.oversize(identity: Array("idA".utf8), reqId: Array("c1-9".utf8), bytes: 2000, limit: 1000, into: &out)
        h.machine.oversize(identity: Array("idA".utf8), reqId: nil, bytes: 2000, limit: 1000, into: &out)
        let sent = out.map(ServerOut.init)
        XCTAssertEqual(sent.count, 1, "without an id there is nobody to answer")
        XCTAssertEqual(responseError(sent, to: "idA", reqId: "c1-9"),
                       RemoteError("message of 2000 bytes exceeds the limit of 1000 bytes", code: .limit))
        XCTAssertEqual(h.machine.stats.malformed, 2)
    }
}
