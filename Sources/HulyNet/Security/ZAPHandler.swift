#if canImport(Glibc)
import Glibc
#endif
import CZeroMQ
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// The security of a coordinator: CURVE encryption with its key pair, and which client keys it
/// admits (docs/SECURITY.md).
public struct ServerSecurity: Sendable {
    /// The coordinator's key pair; clients are given its public key.
    public var keys: CurveKeyPair
    /// The allow list file (`AllowList`), read again when it changes. nil: any client that knows
    /// the coordinator's public key is admitted (encryption without authentication).
    public var allowListPath: String?

    public init(keys: CurveKeyPair, allowListPath: String?) {
        self.keys = keys
        self.allowListPath = allowListPath
    }
}

/// The ZAP handler (ZeroMQ's authentication protocol, RFC 27) of one ZeroMQ context: libzmq
/// asks it about every client completing a CURVE handshake with a server socket of the
/// context, and it admits the keys of the allow list. The file is read again when its size or
/// modification time changes (looked at on each handshake and every second), so an operator
/// edits it without a restart. A refusal is logged with the key's fingerprint (never the key)
/// and counted; the refused client gets nothing at all.
///
/// Confined to its loop's thread.
final class ZAPHandler {
    static let domain = "hulynet"

    private let socket: ZMQSocket
    private let loop: IOLoop
    /// nil: every CURVE key is admitted (and named), as endpoints need.
    private let path: String?
    private let logger: Logger
    private var list = AllowList()
    private var fileStamp: (size: Int, modified: Int64, inode: UInt64)?
    private var timer: IOLoop.TimerID?
    private(set) var admitted = 0
    private(set) var refused = 0
    /// Called on each refusal (for the metrics).
    var onRefused: (() -> Void)?
    /// Called after the list was read again, with the old one and the new.
    var onReload: ((_ old: AllowList, _ new: AllowList) -> Void)?
    /// Refusals are summed into one log line every few seconds: a flood of strangers must not
    /// flood the log.
    private var refusals = LogSummary(intervalMs: 5000)

    init(loop: IOLoop, context: ZMQContext, allowListPath: String?, logger: Logger) throws {
        self.loop = loop
        path = allowListPath
        self.logger = logger
        socket = try ZMQSocket(context: context, type: .rep)
        try socket.setOption(ZMQ_LINGER, 0)
        try socket.bind("inproc://zeromq.zap.01")
        reloadIfChanged(force: true)
        if let path, list.count == 0 {
            logger.warning("the allow list \(path) admits no key yet: every client is refused until it does")
        }
        loop.register(socket) { [unowned self] in answerAll() }
        timer = loop.every(milliseconds: 1000) { [unowned self] in
            reloadIfChanged(force: false)
            if let line = refusals.line(now: MonotonicClock.nowMs(), what: "clients refused") { logger.warning("\(line)") }
        }
    }

    func close() {
        if let timer { loop.cancel(timer) }
        loop.unregister(socket)
        socket.close()
    }

    private func answerAll() {
        while case .message(let frames)? = try? socket.receive(dontWait: true, maxFrames: 16, maxBytes: 4096) {
            reloadIfChanged(force: false)
            socket.sendQuietly(answer(frames))
        }
    }

    /// The entry of an admitted key (the user id of its connection is the key).
    func entry(for publicKey: String) -> AllowList.Entry? { list.entry(for: publicKey) }

    /// The reply to one ZAP request: [version, request id, status code, status text, user id,
    /// metadata]. The user id is the client's public key, for the server to find its policy.
    func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
        let requestId = frames.count > 1 ? frames[1] : []
        func reply(_ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestId, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        guard frames.count >= 7, frames[0] == Array("1.0".utf8) else { return reply("500", "malformed ZAP request") }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        guard mechanism == "CURVE", let key = Curve.z85(frames[6]) else {
            refused += 1
            onRefused?()
            refusals.record("mechanism \(mechanism) refused")
            return reply("400", "CURVE required")
        }
        guard path != nil else {
            admitted += 1
            return reply("200", "OK", user: key)
        }
        guard let entry = list.entry(for: key) else {
            refused += 1
            onRefused?()
            let address = String(decoding: frames[3], as: UTF8.self)
            refusals.record("key \(Curve.fingerprint(key)) from \(address) is not on the allow list")
            return reply("400", "key not allowed")
        }
        admitted += 1
        return reply("200", "OK", user: entry.publicKey)
    }

    private func reloadIfChanged(force: Bool) {
        guard let path else { return }
        var info = stat()
        guard stat(path, &info) == 0 else {
            if force || fileStamp != nil {
                logger.error("cannot read the allow list \(path): \(String(cString: strerror(errno))); keeping the keys read before (\(list.count))")
            }
            return
        }
        let stamp = (size: Int(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                     inode: UInt64(info.st_ino))
        if !force, let fileStamp, fileStamp == stamp { return }
        guard info.st_size <= 16 << 20, let text = Self.read(path) else {
            logger.error("cannot read the allow list \(path) (unreadable, or over 16 MiB); keeping the keys read before (\(list.count))")
            fileStamp = stamp
            return
        }
        let fresh = AllowList(parsing: text, isKey: Curve.isKey)
        for problem in fresh.problems.prefix(20) { logger.warning("allow list \(path): \(problem)") }
        if fileStamp != nil, fresh != list {
            logger.notice("allow list \(path) reloaded: \(fresh.count) keys (was \(list.count))")
        } else if fileStamp == nil {
            logger.info("allow list \(path): \(fresh.count) keys")
        }
        let old = list
        list = fresh
        fileStamp = stamp
        if old != fresh { onReload?(old, fresh) }
    }

    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 { if errno == EINTR { continue }; return nil }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[..<count])
            if bytes.count > 16 << 20 { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private extension ZMQSocket {
    func sendQuietly(_ frames: [[UInt8]]) {
        _ = try? send(frames)
    }
}
