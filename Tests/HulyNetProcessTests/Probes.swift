import HulyNet
import HulyNetCore
import HulyNetProcess
import XCTest

// What the failover tests share: `hulynet agent` and `hulynet call` children, and what a probe
// printed.

/// A `hulynet agent` child and the uuid it serves under.
struct AgentProcess {
    let process: ChildProcess
    let uuid: AgentUUID
}

extension ProcessTestCase {
    /// `hulynet agent` of the echo kind, once it serves; its uuid from its first line.
    func startAgent(port: Int, _ extra: [String] = []) throws -> AgentProcess {
        let process = try startHulynet(["agent", "--network", "127.0.0.1:\(port)"] + extra)
        let line = try process.waitForLine(containing: "serving", timeoutMs: scaled(10_000))
        let words = line.split(separator: " ")
        guard words.count > 1, words[0] == "agent" else { throw process.failure("no agent uuid in '\(line)'") }
        return AgentProcess(process: process, uuid: String(words[1]))
    }

    /// `hulynet call` with these arguments, once it holds its reference.
    func startProbe(port: Int, _ arguments: [String]) throws -> ChildProcess {
        let probe = try startHulynet(["call", "--network", "127.0.0.1:\(port)"] + arguments)
        try probe.waitForLine(containing: #""event":"ready""#, timeoutMs: scaled(10_000))
        return probe
    }

    func waitForCalls(_ probe: ChildProcess, atLeast count: Int) throws {
        try probe.waitFor("\(count) calls answered", timeoutMs: scaled(10_000)) {
            ProbeReport(probe.output()).calls.count >= count
        }
    }

    func waitForDone(_ probe: ChildProcess) throws -> ProbeReport {
        try probe.waitForLine(containing: #""event":"done""#, timeoutMs: scaled(60_000))
        return ProbeReport(probe.output())
    }

    func eventuallyAsync(_ what: String, _ condition: () async throws -> Bool) async throws {
        let ok = await eventually(what, timeoutMs: scaled(10_000)) { (try? await condition()) == true }
        if !ok { throw ChildProcessError(what) }
    }
}

/// The agent an endpoint reference names.
func agentId(ofEndpoint endpoint: String) -> AgentUUID? {
    try? EndpointRef(parsing: endpoint).agentId
}

/// What a `hulynet call` probe printed (its JSON lines; anything else is skipped).
struct ProbeReport {
    struct Call {
        let index: Int
        let start: Int64
        let end: Int64
        let ok: Bool
        let answer: JSONValue?
        let error: String?
    }

    var ready: JSONValue = .null
    var calls: [Call] = []
    var moves: [(uuid: ContainerUUID, endpoint: String, at: Int64)] = []
    var done: JSONValue?

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let value = try? JSONValue.parse(String(line)), let event = value.member("event")?.stringValue else { continue }
            switch event {
            case "ready":
                ready = value
            case "call":
                calls.append(Call(index: value.member("i")?.intValue ?? -1,
                                  start: Int64(value.member("start")?.doubleValue ?? 0),
                                  end: Int64(value.member("end")?.doubleValue ?? 0),
                                  ok: value.member("ok")?.boolValue ?? false,
                                  answer: value.member("answer"), error: value.member("error")?.stringValue))
            case "moved":
                moves.append((value.member("uuid")?.stringValue ?? "", value.member("endpoint")?.stringValue ?? "",
                              Int64(value.member("at")?.doubleValue ?? 0)))
            case "done":
                done = value
            default:
                break
            }
        }
    }

    var uuid: ContainerUUID { ready.member("uuid")?.stringValue ?? "" }
    var clientId: ClientUUID { ready.member("client")?.stringValue ?? "" }
    var agentId: AgentUUID? { ready.member("endpoint")?.stringValue.flatMap(HulyNetProcessTests.agentId(ofEndpoint:)) }
    var errors: [Call] { calls.filter { !$0.ok } }
    var maxCallMs: Int64 { calls.map { $0.end - $0.start }.max() ?? 0 }

    /// The longest stretch without a successful answer that spans `instant` (a kill), and when
    /// the first answer after it came.
    func outage(around instant: Int64) -> (ms: Int64, endedAt: Int64)? {
        let ends = calls.filter(\.ok).map(\.end).sorted()
        var best: (ms: Int64, endedAt: Int64)?
        for (previous, next) in zip(ends, ends.dropFirst()) where next > instant && previous <= instant + 10_000 {
            if next - previous > (best?.ms ?? -1) { best = (next - previous, next) }
        }
        return best
    }
}
