import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetSync
import HulyNetZMQ
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// A storm of random multipart messages from several raw peers against a real `hulynet server`
// process while a good client calls a container through an agent: nothing crashes, the good
// client sees no error, memory is given back afterwards and the log stays small.
//
// HULYNET_STORM_MESSAGES (default 50000) sets the storm's size, HULYNET_STORM_SETTLE_MS (default
// 30000) how long the memory may take to come back down, HULYNET_STORM_SEED the random seed.

private let mebibyte = 1 << 20

private func environmentInt(_ name: String, _ defaultValue: Int) -> Int {
    getenv(name).flatMap { Int(String(cString: $0)) } ?? defaultValue
}

/// Hostile messages of many shapes (without the routing identity, which the DEALER adds).
private struct StormMessages {
    var random: SplitMix64
    let maxMessageBytes: Int
    private var serial = 0

    init(seed: UInt64, maxMessageBytes: Int) {
        random = SplitMix64(seed: seed)
        self.maxMessageBytes = maxMessageBytes
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    mutating func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    mutating func request(_ payload: [UInt8]) -> [[UInt8]] {
        serial += 1
        return [text("1"), text("storm-\(serial)"), payload]
    }

    /// The next message; `kind` tells which shape it has (for the record).
    mutating func next() -> (kind: String, frames: [[UInt8]]) {
        let roll = Int.random(in: 0..<1000, using: &random)
        switch roll {
        case 0..<300:
            let count = Int.random(in: 1...24, using: &random)
            return ("random frames", (0..<count).map { _ in bytes(Int.random(in: 0...300, using: &random)) })
        case 300..<400:
            // Bad UTF-8 where text is expected: a client id, a method name, a payload.
            let bad: [UInt8] = [0xC0, 0xAF, 0xFF, 0xFE, 0xED, 0xA0, 0x80]
            return ("bad UTF-8", Bool.random(using: &random)
                ? [text("0"), bad + bytes(8), bad, []]
                : request(text("[\"") + bad + text("\",{}]")))
        case 400..<500:
            let depth = Int.random(in: 65...200_000, using: &random)
            return ("deep nesting", request(text("[\"cs\",") + [UInt8](repeating: UInt8(ascii: "["), count: depth)))
        case 500..<600:
            let digits = String(repeating: "9", count: Int.random(in: 400...20_000, using: &random))
            let numbers = ["1e999999999", "-1e-999999999", digits, "-\(digits).\(digits)e\(digits)"]
            let number = numbers[Int.random(in: 0..<numbers.count, using: &random)]
            return ("huge numbers", request(text("[\"gg\",{\"kind\":\"echo\",\"request\":{\"labels\":[\(number)]}}]")))
        case 600..<700:
            let length = roll < 605 ? 1 << 20 : Int.random(in: 1000...16_000, using: &random)
            return ("long strings", request(text("[\"cs\",[\"" + String(repeating: "a", count: length) + "\",\"echo\",1]]")))
        case 700..<800:
            // Well-formed frames with random ops and ids, hellos with odd client ids included.
            let op = String(Int.random(in: 0...12, using: &random))
            return ("random ops", [text(op), bytes(Int.random(in: 0...64, using: &random)), bytes(Int.random(in: 0...64, using: &random))])
        case 800..<900:
            return ("bad requests", request(bytes(Int.random(in: 0...2000, using: &random))))
        case 900..<997:
            let methods = ["ar", "au", "gg", "cr", "cs", "cl", "al", "ak", "zz"]
            let method = methods[Int.random(in: 0..<methods.count, using: &random)]
            let params = ["{}", "null", "[1,2,3]", "{\"uuid\":7}", "{\"kind\":[]}", "\"x\"", "{\"request\":{\"uuid\":{}}}"]
            let param = params[Int.random(in: 0..<params.count, using: &random)]
            return ("wrong params", request(text("[\"\(method)\",\(param)]")))
        default:
            // Frames each within the limit, too large together; or one frame over it (the
            // sender's connection is closed, it reconnects).
            if roll == 999 {
                return ("one frame over the limit", request([UInt8](repeating: 0x62, count: maxMessageBytes + 1)))
            }
            let half = [UInt8](repeating: 0x63, count: maxMessageBytes / 2 + 1)
            return ("frames over the limit together", [text("1"), text("big"), half, half])
        }
    }
}

private final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Calls the echo container until `stop` is set; returns how many calls and what went wrong.
private func callUntilStopped(_ reference: ContainerReference, _ stop: StopFlag,
                              timeoutMs: Int64) async -> (calls: Int, errors: [String]) {
    var calls = 0
    var errors: [String] = []
    while !stop.isSet {
        calls += 1
        do {
            let answer = try await reference.request("echo", ["call": .number(Double(calls))], timeoutMs: timeoutMs)
            if answer != ["call": .number(Double(calls))] { errors.append("call \(calls) answered \(answer)") }
        } catch {
            errors.append("call \(calls): \(error)")
        }
    }
    return (calls, errors)
}

final class StormTests: ProcessTestCase {
    func testStormOfRandomMessagesLeavesGoodClientsServedAndMemoryReturned() async throws {
        let total = environmentInt("HULYNET_STORM_MESSAGES", 50_000)
        let settleMs = scaled(environmentInt("HULYNET_STORM_SETTLE_MS", 30_000))
        let seed = UInt64(environmentInt("HULYNET_STORM_SEED", Int(ChildProcess.nowMs() & 0xFFFF_FFFF)))
        let peerCount = 6

        let (server, port) = try startServer()
        let agentSide = try await connectClient(port: port)
        try await agentSide.serve(Agent(containerTypes: [EchoContainer.self]))
        let client = try await connectClient(port: port)
        let reference = try await client.get(kind: "echo", options: GetOptions(labels: ["good"]))
        for index in 0..<200 {
            let answer = try await reference.request("echo", .number(Double(index)))
            XCTAssertEqual(answer, .number(Double(index)))
        }
        let baseline = try await settledResident(server)
        let logBefore = server.outputBytes(.stdout) + server.outputBytes(.stderr)

        // The good client calls through the agent for as long as the storm lasts.
        let stormOver = StopFlag()
        let callTimeoutMs = Int64(scaled(10_000))
        let goodCalls = Task { await callUntilStopped(reference, stormOver, timeoutMs: callTimeoutMs) }

        // The storm, from several raw peers on a thread of its own (blocking sends with deadlines).
        let started = ChildProcess.nowMs()
        let sendTimeoutMs = scaled(30_000)
        let storm = Task.detached { () -> Result<[String: Int], any Error> in
            Result {
                var messages = StormMessages(seed: seed, maxMessageBytes: defaultMaxMessageBytes)
                let context = ZMQContext()
                defer { context.terminate() }
                var peers = try (0..<peerCount).map { _ in try RawDealer(port: port, context: context) }
                defer { peers.removeAll() }
                var kinds: [String: Int] = [:]
                for index in 0..<total {
                    let (kind, frames) = messages.next()
                    kinds[kind, default: 0] += 1
                    let peer = peers[index % peerCount]
                    try peer.send(frames, timeoutMs: sendTimeoutMs)
                    if index % 64 == 0 { peer.drain() }
                }
                // Until the server has answered what it will: reading keeps its queues short.
                var quiet = 0
                while quiet < 20 {
                    quiet = peers.reduce(0) { $0 + $1.drain() } == 0 ? quiet + 1 : 0
                    usleep(10_000)
                }
                return kinds
            }
        }
        let kinds = try await storm.value.get()
        let stormMs = ChildProcess.nowMs() - started
        stormOver.set()
        let (calls, errors) = await goodCalls.value
        let peakDuring = server.peakResidentBytes() ?? 0

        XCTAssertTrue(server.isRunning, "the server survived the storm: \(server.status.map { "\($0)" } ?? "")")
        XCTAssertEqual(errors, [], "the good client saw errors")
        XCTAssertGreaterThan(calls, 0)

        // Memory comes back down: wait until it is under the limit and has not moved for 2 s (the
        // server trims its heap a second after a burst), within the settle time.
        let limit = baseline + 64 * mebibyte
        let settleStart = ChildProcess.nowMs()
        let rightAfter = server.residentBytes() ?? 0
        var resident = rightAfter
        var steadySince = settleStart
        while ChildProcess.nowMs() - settleStart < Int64(settleMs) {
            try await Task.sleep(nanoseconds: 250_000_000)
            let now = server.residentBytes() ?? 0
            if abs(now - resident) >= mebibyte / 4 { steadySince = ChildProcess.nowMs() }
            resident = now
            if now <= limit, ChildProcess.nowMs() - steadySince >= 2000 { break }
        }
        let settledAfter = ChildProcess.nowMs() - settleStart
        let logBytes = server.outputBytes(.stdout) + server.outputBytes(.stderr) - logBefore
        let malformedLines = server.output(.stderr).split(separator: "\n").filter { $0.contains("input from peers refused") }.count

        print("figure: storm: \(total) messages from \(peerCount) peers in \(stormMs) ms (seed \(seed)); kinds \(kinds.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))")
        print("figure: storm: good client \(calls) calls, \(errors.count) errors; server RSS baseline \(baseline / mebibyte) MiB, peak \(peakDuring / mebibyte) MiB, \(rightAfter / mebibyte) MiB right after, \(resident / mebibyte) MiB settled \(settledAfter) ms after the storm; log \(logBytes) bytes (\(malformedLines) summary lines)")
        XCTAssertLessThanOrEqual(resident, limit, "memory not given back within \(settleMs) ms: \(resident / mebibyte) MiB, baseline \(baseline / mebibyte) MiB")
        XCTAssertLessThanOrEqual(logBytes, mebibyte, "the storm wrote \(logBytes) bytes of log")

        // And still serves.
        let after = try await reference.request("echo", "after the storm")
        XCTAssertEqual(after, "after the storm")
    }

    /// The server's resident memory once it stops moving (within 1 MiB over half a second).
    private func settledResident(_ server: ChildProcess) async throws -> Int {
        var previous = server.residentBytes() ?? 0
        let deadline = ChildProcess.nowMs() + Int64(scaled(5000))
        while ChildProcess.nowMs() < deadline {
            try await Task.sleep(nanoseconds: 500_000_000)
            let now = server.residentBytes() ?? 0
            if abs(now - previous) < mebibyte { return now }
            previous = now
        }
        return previous
    }
}
