import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetSync
import HulyNetZMQ
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Hostile peers against a real `hulynet server` process, over real sockets: what one peer can
// make the coordinator buffer, hold, or write to its log, and whether other clients still get
// answers. Figures are printed ("figure: ...") for docs/RELIABILITY.md; the assertions are the
// targets of the reliability issue.

private let mebibyte = 1 << 20

/// A figure for the record, on the test's output.
private func figure(_ text: String) { print("figure: \(text)") }

final class OversizeMessageTests: ProcessTestCase {
    /// One 256 MiB message: libzmq refuses it from the frame header (ZMQ_MAXMSGSIZE) and closes
    /// the sender's connection, so the coordinator never buffers it; others keep being answered.
    func testOversizeMessageIsRefusedBeforeItIsBuffered() async throws {
        let (server, port) = try startServer()
        let client = try await connectClient(port: port)
        let kindsBefore = try await client.kinds()
        XCTAssertEqual(kindsBefore, [])
        let baseline = try XCTUnwrap(server.residentBytes())
        try server.resetPeakResident()

        let sender = try RawDealer(port: port)
        let size = 256 * mebibyte
        try sender.send([Array("1".utf8), Array("big-1".utf8), [UInt8](repeating: UInt8(ascii: "x"), count: size)],
                        timeoutMs: scaled(10_000))
        await eventually("the server closes the oversize sender's connection", timeoutMs: scaled(20_000)) {
            sender.sawDisconnect()
        }
        XCTAssertTrue(server.isRunning)
        let peak = try XCTUnwrap(server.peakResidentBytes())
        let growth = peak - baseline
        figure("oversize: one \(size / mebibyte) MiB message raised the server's peak RSS by \(growth / 1024) KiB (baseline \(baseline / mebibyte) MiB)")
        XCTAssertLessThanOrEqual(growth, 64 * mebibyte, "the oversize message was buffered")

        // A well-behaved client is still answered.
        let kindsAfter = try await client.kinds(timeoutMs: Int64(scaled(5000)))
        XCTAssertEqual(kindsAfter, [])
    }
}

final class SilentConnectionTests: ProcessTestCase {
    /// Under `ulimit -n 1024`, 1,100 TCP connections that never send a greeting: the connection
    /// cap closes the silent ones to make room, so a new client is answered within 5 s; twice.
    func testSilentConnectionsDoNotLockNewClientsOut() async throws {
        let silentCount = 1100
        try ensureOwnFileLimit(silentCount + 512)
        let (server, port) = try startServer(fileLimit: 1024)
        for round in 1...2 {
            // In batches that the listen queue holds, each connect completed before the next
            // batch: every connection reaches the server (none waits on a dropped SYN).
            var sockets: [Int32] = []
            defer { for fd in sockets { close(fd) } }
            var established = 0
            while sockets.count < silentCount {
                let batch = try openSilentConnections(min(50, silentCount - sockets.count), port: port)
                sockets += batch
                established += waitUntilConnected(batch, timeoutMs: scaled(300))
            }
            // The server has taken in what it will: its descriptors reach the limit or stop growing.
            let held = await waitUntilSteady(timeoutMs: scaled(12_000)) { server.openFileCount() }
            let started = ChildProcess.nowMs()
            let client = try await connectClient(port: port)
            _ = try await client.kinds(timeoutMs: Int64(scaled(5000)))
            let elapsed = Int(ChildProcess.nowMs() - started)
            figure("silent connections, round \(round): \(established) of \(silentCount) silent TCP connections established under ulimit -n 1024; the server held \(held) descriptors; a new client answered after \(elapsed) ms")
            XCTAssertLessThanOrEqual(elapsed, scaled(5000), "a new client must be answered within 5 s")
            await client.close()
            XCTAssertTrue(server.isRunning)
        }
    }

    /// Samples `count` until it reaches 1,000 or has not grown for 1 s; returns the last sample.
    private func waitUntilSteady(timeoutMs: Int, _ count: () -> Int) async -> Int {
        let start = ChildProcess.nowMs()
        var last = count()
        var grewAt = start
        while ChildProcess.nowMs() - start < timeoutMs, last < 1000, ChildProcess.nowMs() - grewAt < 1000 {
            try? await Task.sleep(nanoseconds: 100_000_000)
            let now = count()
            if now > last { grewAt = ChildProcess.nowMs() }
            last = max(last, now)
        }
        return last
    }

    /// Waits until every socket's connect has completed (writable, or closed by the server since);
    /// returns how many did within `timeoutMs`.
    private func waitUntilConnected(_ sockets: [Int32], timeoutMs: Int) -> Int {
        var waiting = sockets.map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) }
        let deadline = ChildProcess.nowMs() + Int64(timeoutMs)
        while !waiting.isEmpty, ChildProcess.nowMs() < deadline {
            _ = poll(&waiting, nfds_t(waiting.count), 50)
            waiting.removeAll { $0.revents != 0 }
            for index in waiting.indices { waiting[index].revents = 0 }
        }
        return sockets.count - waiting.count
    }

    /// Non-blocking connects that never send a byte.
    private func openSilentConnections(_ count: Int, port: Int) throws -> [Int32] {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var sockets: [Int32] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else {
                for open in sockets { close(open) }
                throw ChildProcessError("socket: \(String(cString: strerror(errno)))")
            }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            sockets.append(fd)
        }
        return sockets
    }
}
