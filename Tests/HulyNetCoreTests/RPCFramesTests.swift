import XCTest
@testable import HulyNetCore

private func f(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A ROUTER's routing identity; the client decoder gets the frames after it (a slice from index 1).
private let identity: [UInt8] = [0x00, 0x6B, 0x8B, 0x45, 0x67]

private func decodeClient(_ frames: [[UInt8]]) -> Result<ClientMessage, MalformedMessage> {
    let received = [identity] + frames
    return ClientMessage.decode(received[1...])
}

private func decodeServer(_ frames: [[UInt8]]) -> Result<ServerMessage, MalformedMessage> {
    ServerMessage.decode(frames[...])
}

private func reason<T>(_ result: Result<T, MalformedMessage>) -> MalformedMessage.Reason? {
    if case .failure(let malformed) = result { return malformed.reason }
    return nil
}

private func malformed<T>(_ result: Result<T, MalformedMessage>) -> MalformedMessage? {
    if case .failure(let malformed) = result { return malformed }
    return nil
}

final class RPCFramesTests: XCTestCase {

    // MARK: - Client -> server: every op

    func testClientOpsDecodeFromTheWireShapes() {
        XCTAssertEqual(decodeClient([f("0"), f("client-a"), f(#"{"aliveTimeout":3}"#), []]),
                       .success(.hello(clientId: "client-a", aliveTimeoutMs: 3000)))
        XCTAssertEqual(decodeClient([f("1"), f("client-a-1"), f(#"["al",{}]"#)]),
                       .success(.request(reqId: f("client-a-1"), payload: f(#"["al",{}]"#))))
        XCTAssertEqual(decodeClient([f("2"), f("srv-1"), f(#""ok""#)]),
                       .success(.response(reqId: f("srv-1"), payload: f(#""ok""#))))
        XCTAssertEqual(decodeClient([f("3"), f("srv-2"), RemoteError("boom").payload]),
                       .success(.responseError(reqId: f("srv-2"), payload: RemoteError("boom").payload)))
        XCTAssertEqual(decodeClient([f("4"), [], f("{}"), []]), .success(.event(payload: f("{}"))))
        XCTAssertEqual(decodeClient([f("5"), [], [], []]), .success(.ping))
        XCTAssertEqual(decodeClient([f("8"), [], [], []]), .success(.close))
    }

    func testClientShortFormsTheServerHasAlwaysAccepted() {
        // hello without payload: no alive timeout; event, ping and close need nothing after the op.
        XCTAssertEqual(decodeClient([f("0"), f("c")]), .success(.hello(clientId: "c", aliveTimeoutMs: nil)))
        XCTAssertEqual(decodeClient([f("4")]), .success(.event(payload: [])))
        XCTAssertEqual(decodeClient([f("5")]), .success(.ping))
        XCTAssertEqual(decodeClient([f("8")]), .success(.close))
    }

    func testClientTrailingFramesAreIgnored() {
        XCTAssertEqual(decodeClient([f("1"), f("r"), f("[]"), f("extra"), []]),
                       .success(.request(reqId: f("r"), payload: f("[]"))))
        XCTAssertEqual(decodeClient([f("0"), f("c"), f("{}"), [], f("extra")]),
                       .success(.hello(clientId: "c", aliveTimeoutMs: nil)))
        XCTAssertEqual(decodeClient([f("5"), [], [], [], f("x")]), .success(.ping))
    }

    func testHelloAliveTimeoutIsReadRoundedAndClamped() {
        func alive(_ payload: String) -> Int64?? {
            guard case .success(.hello(_, let ms)) = decodeClient([f("0"), f("c"), f(payload), []]) else { return .none }
            return .some(ms)
        }
        XCTAssertEqual(alive(#"{"aliveTimeout":3}"#), 3000)
        XCTAssertEqual(alive(#"{"aliveTimeout":1.001}"#), 1001)       // 1.001 * 1000 is 1000.999...
        XCTAssertEqual(alive(#"{"aliveTimeout":0.0001}"#), 1)         // positive never means "at once"
        XCTAssertEqual(alive(#"{"aliveTimeout":86400}"#), 86_400_000)
        XCTAssertEqual(alive(#"{"aliveTimeout":1e300}"#), 86_400_000)
        XCTAssertEqual(alive(#"{"aliveTimeout":0}"#), .some(nil))
        XCTAssertEqual(alive(#"{"aliveTimeout":-5}"#), .some(nil))
        XCTAssertEqual(alive(#"{"aliveTimeout":"3"}"#), .some(nil))
        XCTAssertEqual(alive(#"{"aliveTimeout":null}"#), .some(nil))
        XCTAssertEqual(alive(#"{"aliveTimeout":1e999}"#), .some(nil))  // not JSON we accept
        XCTAssertEqual(alive(#"{"other":3}"#), .some(nil))
        XCTAssertEqual(alive("[3]"), .some(nil))
        XCTAssertEqual(alive("{aliveTimeout:3"), .some(nil))
        XCTAssertEqual(alive(""), .some(nil))
    }

    /// Client ids are printable ASCII of at most 128 bytes (uuids): anything else is refused, so
    /// that no peer's bytes reach a log line, a map key or an event.
    func testClientIdIsPrintableASCIIOfAtMost128Bytes() {
        XCTAssertEqual(decodeClient([f("0"), Array(repeating: 0x61, count: 128), f("{}"), []]),
                       .success(.hello(clientId: String(repeating: "a", count: 128), aliveTimeoutMs: nil)))
        for id in [[0x61, 0xFF, 0x62], Array(repeating: 0x61, count: 129), f("a b"), [0x61, 0x00], [0x7F]] as [[UInt8]] {
            XCTAssertEqual(reason(decodeClient([f("0"), id, f("{}"), []])), .badClientId, "\(id)")
        }
    }

    // MARK: - Client -> server: every malformed shape

    func testClientMalformedShapes() {
        XCTAssertEqual(reason(decodeClient([])), .noFrames)
        XCTAssertEqual(reason(decodeClient([[]])), .badOp)
        XCTAssertEqual(reason(decodeClient([f("10")])), .badOp)
        XCTAssertEqual(reason(decodeClient([f("a"), f("b")])), .badOp)
        XCTAssertEqual(reason(decodeClient([[0x2F]])), .badOp)  // '/' is just below '0'
        XCTAssertEqual(reason(decodeClient([[0x3A]])), .badOp)  // ':' is just above '9'
        XCTAssertEqual(reason(decodeClient([f("6"), f("srv"), []])), .wrongSideOp)
        XCTAssertEqual(reason(decodeClient([f("7"), f("r"), f("1")])), .wrongSideOp)
        XCTAssertEqual(reason(decodeClient([f("9"), f("srv"), []])), .wrongSideOp)
        XCTAssertEqual(reason(decodeClient([f("0")])), .missingFrames)
        XCTAssertEqual(reason(decodeClient([f("0"), [], f("{}"), []])), .emptyClientId)
        for op in ["1", "2", "3"] {
            XCTAssertEqual(reason(decodeClient([f(op)])), .missingFrames, op)
            XCTAssertEqual(reason(decodeClient([f(op), f("r")])), .missingFrames, op)
            XCTAssertEqual(reason(decodeClient([f(op), [], f("[]")])), .emptyRequestId, op)
        }
    }

    func testMalformedRequestKeepsItsIdSoTheServerCanAnswer() {
        // Identity + op + reqId (3 frames): the server answers it with an error.
        XCTAssertEqual(malformed(decodeClient([f("1"), f("client-9")]))?.reqId, f("client-9"))
        XCTAssertEqual(malformed(decodeClient([f("1"), [], f("[]")]))?.reqId, [])
        // Nothing to answer to.
        XCTAssertNil(malformed(decodeClient([f("1")]))?.reqId)
        XCTAssertNil(malformed(decodeClient([f("0")]))?.reqId)
    }

    func testEveryReasonIsProducedByTheDecoders() {
        var seen: Set<MalformedMessage.Reason> = []
        let client: [[[UInt8]]] = [[], [f("x")], [f("6")], [f("0")], [f("0"), []], [f("0"), f("a b")], [f("1"), []]]
        for frames in client { if let r = reason(decodeClient(frames)) { seen.insert(r) } }
        XCTAssertEqual(seen, Set(MalformedMessage.Reason.allCases))
    }

    // MARK: - Server -> client: every op

    func testServerOpsDecodeFromTheWireShapes() {
        XCTAssertEqual(decodeServer([f("0"), f("srv-uuid"), []]), .success(.hello(serverId: "srv-uuid")))
        XCTAssertEqual(decodeServer([f("1"), f("srv-1"), f(#"["gg",[]]"#)]),
                       .success(.request(reqId: f("srv-1"), payload: f(#"["gg",[]]"#))))
        XCTAssertEqual(decodeServer([f("2"), f("c-1"), f("[1]")]), .success(.response(reqId: f("c-1"), payload: f("[1]"))))
        XCTAssertEqual(decodeServer([f("3"), f("c-2"), RemoteError("no").payload]),
                       .success(.responseError(reqId: f("c-2"), payload: RemoteError("no").payload)))
        XCTAssertEqual(decodeServer([f("4"), [], f("{}")]), .success(.event(payload: f("{}"))))
        XCTAssertEqual(decodeServer([f("6"), f("srv-uuid"), []]), .success(.pong(serverId: "srv-uuid")))
        XCTAssertEqual(decodeServer([f("7"), f("c-3"), f("26")]), .success(.retry(reqId: f("c-3"), inFlight: 26)))
        XCTAssertEqual(decodeServer([f("9"), f("srv-uuid"), []]), .success(.askHello(serverId: "srv-uuid")))
    }

    func testServerMissingFramesReadAsEmptyAsTheClientAlwaysDid() {
        XCTAssertEqual(decodeServer([f("0")]), .success(.hello(serverId: "")))
        XCTAssertEqual(decodeServer([f("6")]), .success(.pong(serverId: "")))
        XCTAssertEqual(decodeServer([f("9")]), .success(.askHello(serverId: "")))
        XCTAssertEqual(decodeServer([f("4")]), .success(.event(payload: [])))
        XCTAssertEqual(decodeServer([f("1"), f("s-1")]), .success(.request(reqId: f("s-1"), payload: [])))
        XCTAssertEqual(decodeServer([f("2"), f("c-1")]), .success(.response(reqId: f("c-1"), payload: [])))
        XCTAssertEqual(decodeServer([f("0"), f("s"), [], f("extra")]), .success(.hello(serverId: "s")))
    }

    func testRetryCountIsAnIntegerOrOne() {
        func inFlight(_ payload: [UInt8]?) -> Int? {
            let frames = [f("7"), f("c-1")] + (payload.map { [$0] } ?? [])
            guard case .success(.retry(_, let n)) = decodeServer(frames) else { return nil }
            return n
        }
        XCTAssertEqual(inFlight(f("26")), 26)
        XCTAssertEqual(inFlight(f(" 3 ")), 3)
        XCTAssertEqual(inFlight(f("-2")), -2)     // the client clamps the back-off itself
        XCTAssertEqual(inFlight(f("1.5")), 1)
        XCTAssertEqual(inFlight(f("1e30")), 1)
        XCTAssertEqual(inFlight(f("\"26\"")), 1)
        XCTAssertEqual(inFlight(f("x")), 1)
        XCTAssertEqual(inFlight([]), 1)
        XCTAssertEqual(inFlight(nil), 1)
    }

    func testServerMalformedShapes() {
        XCTAssertEqual(reason(decodeServer([])), .noFrames)
        XCTAssertEqual(reason(decodeServer([f("")])), .badOp)
        XCTAssertEqual(reason(decodeServer([f("00")])), .badOp)
        XCTAssertEqual(reason(decodeServer([f("5"), [], [], []])), .wrongSideOp)
        XCTAssertEqual(reason(decodeServer([f("8")])), .wrongSideOp)
        for op in ["1", "2", "3", "7"] {
            XCTAssertEqual(reason(decodeServer([f(op)])), .emptyRequestId, op)
            XCTAssertEqual(reason(decodeServer([f(op), [], f("1")])), .emptyRequestId, op)
        }
    }

    // MARK: - Encoding: the wire table of PROTOCOL.md

    func testClientFramesMatchTheWireTable() {
        XCTAssertEqual(ClientMessage.hello(clientId: "c", aliveTimeoutMs: 3000).frames,
                       [f("0"), f("c"), f(#"{"aliveTimeout":3}"#), []])
        XCTAssertEqual(ClientMessage.hello(clientId: "c", aliveTimeoutMs: 1500).frames,
                       [f("0"), f("c"), f(#"{"aliveTimeout":1.5}"#), []])
        XCTAssertEqual(ClientMessage.hello(clientId: "c", aliveTimeoutMs: nil).frames, [f("0"), f("c"), f("{}"), []])
        XCTAssertEqual(ClientMessage.request(reqId: f("r"), payload: f("[]")).frames, [f("1"), f("r"), f("[]")])
        XCTAssertEqual(ClientMessage.response(reqId: f("r"), payload: f("1")).frames, [f("2"), f("r"), f("1")])
        XCTAssertEqual(ClientMessage.responseError(reqId: f("r"), payload: f("{}")).frames, [f("3"), f("r"), f("{}")])
        XCTAssertEqual(ClientMessage.event(payload: f("{}")).frames, [f("4"), [], f("{}"), []])
        XCTAssertEqual(ClientMessage.ping.frames, [f("5"), [], [], []])
        XCTAssertEqual(ClientMessage.close.frames, [f("8"), [], [], []])
    }

    func testServerFramesMatchTheWireTable() {
        XCTAssertEqual(ServerMessage.hello(serverId: "s").frames, [f("0"), f("s"), []])
        XCTAssertEqual(ServerMessage.hello(serverId: "s", newClient: true).frames, [f("0"), f("s"), f(#"{"new":true}"#)])
        XCTAssertEqual(ServerMessage.hello(serverId: "s", newClient: false).frames, [f("0"), f("s"), f(#"{"new":false}"#)])
        XCTAssertEqual(ServerMessage.request(reqId: f("r"), payload: f("[]")).frames, [f("1"), f("r"), f("[]")])
        XCTAssertEqual(ServerMessage.response(reqId: f("r"), payload: f("1")).frames, [f("2"), f("r"), f("1")])
        XCTAssertEqual(ServerMessage.responseError(reqId: f("r"), payload: f("{}")).frames, [f("3"), f("r"), f("{}")])
        XCTAssertEqual(ServerMessage.event(payload: f("{}")).frames, [f("4"), [], f("{}")])
        XCTAssertEqual(ServerMessage.pong(serverId: "s").frames, [f("6"), f("s"), []])
        XCTAssertEqual(ServerMessage.retry(reqId: f("r"), inFlight: 26).frames, [f("7"), f("r"), f("26")])
        XCTAssertEqual(ServerMessage.askHello(serverId: "s").frames, [f("9"), f("s"), []])
    }

    // MARK: - Round trips: decode(encode(m)) == m

    func testEveryClientMessageRoundTrips() {
        var rng = SplitMix64(seed: 9)
        for _ in 0..<2000 {
            let message = randomClientMessage(&rng)
            XCTAssertEqual(message.frames.first, message.op.frame)
            XCTAssertEqual(decodeClient(message.frames), .success(message))
            XCTAssertEqual(decodeClient(message.frames + [f("trailing")]), .success(message))
        }
        // Every alive timeout in range survives ms -> seconds -> ms (spot checks across the range).
        for ms in Array(1...5000) + [86_399_999, 86_400_000] + (0..<5000).map({ _ in Int64(1 + rng.below(86_400_000)) }) {
            let message = ClientMessage.hello(clientId: "c", aliveTimeoutMs: Int64(ms))
            XCTAssertEqual(decodeClient(message.frames), .success(message), "\(ms) ms")
        }
    }

    func testEveryServerMessageRoundTrips() {
        var rng = SplitMix64(seed: 10)
        for _ in 0..<2000 {
            let message = randomServerMessage(&rng)
            XCTAssertEqual(message.frames.first, message.op.frame)
            XCTAssertEqual(decodeServer(message.frames), .success(message))
            XCTAssertEqual(decodeServer(message.frames + [f("trailing")]), .success(message))
        }
        for n in [0, 1, 25, 26, -1, 1 << 53, -(1 << 53)] {
            XCTAssertEqual(decodeServer(ServerMessage.retry(reqId: f("r"), inFlight: n).frames),
                           .success(.retry(reqId: f("r"), inFlight: n)))
        }
    }

    // MARK: - Details are safe to log

    func testDetailsQuoteLittleOfThePeersInputEscaped() throws {
        let hostile = [UInt8](repeating: 0x41, count: 10_000) + [0x00, 0x0A, 0x1B, 0xFF]
        let detail = try XCTUnwrap(malformed(decodeClient([hostile])))
        XCTAssertEqual(detail.reason, .badOp)
        XCTAssertLessThan(detail.detail.utf8.count, 200)
        XCTAssertTrue(detail.detail.contains("(10004 bytes)"), detail.detail)
        XCTAssertEqual(MalformedMessage.quoted([0x61, 0x22, 0x5C, 0x00, 0x0A, 0x7F, 0xC3, 0xA9]),
                       #""a\"\\\x00\x0a\x7f\xc3\xa9""#)
        XCTAssertEqual(MalformedMessage.quoted([]), #""""#)
        let long = MalformedMessage.quoted([UInt8](repeating: 0x7A, count: 33))
        XCTAssertEqual(long, "\"" + String(repeating: "z", count: 32) + "\"... (33 bytes)")
        for frames: [[UInt8]] in [[hostile], [f("0"), []], [f("1"), hostile], [f("7")]] {
            let text = try XCTUnwrap(malformed(decodeClient(frames))).detail
            XCTAssertTrue(text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, text)
        }
    }
}

// MARK: - Random messages for the round trips

private func randomBytes(_ rng: inout SplitMix64, nonEmpty: Bool = false) -> [UInt8] {
    let count = rng.below(12) + (nonEmpty ? 1 : 0)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }

    func testAppendDecimalWritesWhatStringWould() {
        for value in [0, 7, 9, 10, 99, 100, 12_345, Int(Int32.max), Int.max, -1, Int.min] {
            var bytes: [UInt8] = [0x2D]
            bytes.appendDecimal(value)
            XCTAssertEqual(bytes, Array("-\(value)".utf8))
        }
    }
}

/// Any Swift string (valid Unicode, so it survives the bytes -> text of the id frames).
private func randomText(_ rng: inout SplitMix64) -> String {
    let scalars: [Unicode.Scalar] = ["a", "-", "0", "é", "中", "😀", "\u{0}", "\u{FFFD}"]
    return String(String.UnicodeScalarView((0..<(1 + rng.below(10))).map { _ in scalars[rng.below(scalars.count)] }))
}

/// A client id a server accepts: printable ASCII, 1 to 128 bytes.
private func randomClientId(_ rng: inout SplitMix64) -> String {
    String(String.UnicodeScalarView((0..<(1 + rng.below(128))).map { _ in Unicode.Scalar(UInt8(0x21 + rng.below(0x7F - 0x21))) }))
}

private func randomClientMessage(_ rng: inout SplitMix64) -> ClientMessage {
    switch rng.below(7) {
    case 0:
        let ms: Int64? = rng.below(4) == 0 ? nil : Int64(1 + rng.below(Int(ClientMessage.aliveTimeoutRangeMs.upperBound)))
        return .hello(clientId: randomClientId(&rng), aliveTimeoutMs: ms)
    case 1: return .request(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 2: return .response(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 3: return .responseError(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 4: return .event(payload: randomBytes(&rng))
    case 5: return .ping
    default: return .close
    }
}

private func randomServerMessage(_ rng: inout SplitMix64) -> ServerMessage {
    switch rng.below(8) {
    case 0: return .hello(serverId: rng.below(5) == 0 ? "" : randomText(&rng), newClient: [nil, true, false][rng.below(3)])
    case 1: return .request(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 2: return .response(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 3: return .responseError(reqId: randomBytes(&rng, nonEmpty: true), payload: randomBytes(&rng))
    case 4: return .event(payload: randomBytes(&rng))
    case 5: return .pong(serverId: randomText(&rng))
    case 6: return .retry(reqId: randomBytes(&rng, nonEmpty: true), inFlight: rng.below(1 << 20) - 10)
    default: return .askHello(serverId: randomText(&rng))
    }
}
