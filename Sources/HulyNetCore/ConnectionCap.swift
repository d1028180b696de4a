/// Keeps an endpoint's open connections at or below a limit, so that connections which never
/// speak cannot use up the process's file descriptors and lock real clients out.
///
/// A pure policy: the I/O shell reports what its socket monitor and its messages tell (a
/// connection accepted, a connection that said hello, a connection closed), each connection named
/// by its file descriptor, and closes the connections this returns.
///
/// Over the limit, the connection that has been waiting longest without saying hello goes first:
/// under a flood of silent connections that is one of the flood, while clients that said hello
/// are never evicted for a newcomer. When every connection has said hello, the newcomer is the
/// one closed.
public struct ConnectionCap: Sendable {
    public let limit: Int

    /// Open connections: the order they were accepted in and whether they said hello.
    private var open: [Int32: (sequence: UInt64, greeted: Bool)] = [:]
    /// Connections that have not said hello, oldest first, with the sequence number they had
    /// when queued (entries of connections since greeted, closed or reused are skipped lazily).
    private var silent: [(fd: Int32, sequence: UInt64)] = []
    private var silentHead = 0
    private var nextSequence: UInt64 = 0

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Connections counted against the limit (open ones not yet asked to close).
    public var count: Int { open.count }

    /// A connection was accepted. Returns the connection to close (possibly this one) when the
    /// limit is exceeded; it no longer counts from now on.
    public mutating func accepted(_ fd: Int32) -> Int32? {
        // A descriptor reused before its close was reported: the old connection is gone.
        open.removeValue(forKey: fd)
        nextSequence += 1
        open[fd] = (nextSequence, false)
        silent.append((fd, nextSequence))
        guard open.count > limit else { return nil }
        let victim = oldestSilent() ?? fd
        open.removeValue(forKey: victim)
        return victim
    }

    /// A message showed that this connection said hello: it is a client, not a silent peer.
    public mutating func greeted(_ fd: Int32) {
        open[fd]?.greeted = true
    }

    /// A connection was closed (by the peer, by a handshake timeout, or because we asked).
    public mutating func closed(_ fd: Int32) {
        open.removeValue(forKey: fd)
        compactIfMostlySkipped()
    }

    private mutating func oldestSilent() -> Int32? {
        while silentHead < silent.count {
            let entry = silent[silentHead]
            silentHead += 1
            if let state = open[entry.fd], state.sequence == entry.sequence, !state.greeted {
                compactIfMostlySkipped()
                return entry.fd
            }
        }
        compactIfMostlySkipped()
        return nil
    }

    /// Drops the entries already passed and those of connections no longer silent, once they
    /// make up most of the queue: it stays proportional to the open connections (amortised O(1)).
    private mutating func compactIfMostlySkipped() {
        let queued = silent.count - silentHead
        guard (silentHead > 1024 && silentHead * 2 > silent.count) || queued > 2 * open.count + 64 else { return }
        silent = silent[silentHead...].filter { entry in
            guard let state = open[entry.fd] else { return false }
            return state.sequence == entry.sequence && !state.greeted
        }
        silentHead = 0
    }
}
