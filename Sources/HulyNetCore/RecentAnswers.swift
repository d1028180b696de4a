/// Who first asked for a forwarded request: the client that sent it to the coordinator and that
/// client's request id. A client resends a request with the same id after a coordinator restart,
/// so the pair names one request across coordinator runs.
public struct RequestOrigin: Hashable, Sendable {
    public var client: ClientUUID
    public var request: String

    public init(client: ClientUUID, request: String) {
        self.client = client
        self.request = request
    }

    /// The trailing element the coordinator adds to a forwarded `cs` (a TypeScript agent reads
    /// only the first two elements and ignores it).
    public var json: JSONValue { .object(["client": .string(client), "request": .string(request)]) }

    public init?(json: JSONValue?) {
        guard let json, let client = json.member("client")?.stringValue, let request = json.member("request")?.stringValue,
              !client.isEmpty, !request.isEmpty else { return nil }
        self.init(client: client, request: request)
    }
}

/// Exactly-once for resent requests: remembers the answers to recent requests by origin for a
/// bounded window, so that a resend is answered from memory, and lets a resend that arrives while
/// the first run is still going join it. Bounded in entries and in answer bytes; the oldest
/// answers are forgotten first.
///
/// Not thread-safe: its owner serialises access. `Waiter` is whatever the owner needs to answer.
public struct RecentAnswers<Waiter> {
    public enum Admission {
        /// New: run it, then call `finish`.
        case run
        /// The first run is still going: the waiter is answered by its `finish`.
        case joined
        /// Already answered: answer this again, without running it.
        case answered(Result<[UInt8], RemoteError>)
    }

    private enum Entry {
        case running([Waiter])
        case answered(Result<[UInt8], RemoteError>, at: Int64, bytes: Int)
    }

    public let windowMs: Int64
    public let maxEntries: Int
    public let maxBytes: Int
    private var entries: [RequestOrigin: Entry] = [:]
    /// Answered entries, oldest first, to forget in order.
    private var answeredOrder: [RequestOrigin] = []
    private var answeredHead = 0
    public private(set) var bytes = 0

    public init(windowMs: Int64 = 120_000, maxEntries: Int = 100_000, maxBytes: Int = 64 << 20) {
        self.windowMs = windowMs
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    public var count: Int { entries.count }
    /// How many places the order of answered entries holds, forgotten ones included (for tests).
    var answeredOrderStorage: Int { answeredOrder.count }

    /// A request arrives with this origin; `waiter` is kept only when it joins a run under way.
    public mutating func admit(_ origin: RequestOrigin, waiter: Waiter, now: Int64) -> Admission {
        forgetOld(now: now)
        switch entries[origin] {
        case .running(var waiters)?:
            waiters.append(waiter)
            entries[origin] = .running(waiters)
            return .joined
        case .answered(let result, _, _)?:
            return .answered(result)
        case nil:
            entries[origin] = .running([])
            return .run
        }
    }

    /// The first run answered: returns the waiters that joined it, to answer the same.
    public mutating func finish(_ origin: RequestOrigin, _ result: Result<[UInt8], RemoteError>, now: Int64) -> [Waiter] {
        guard case .running(let waiters)? = entries[origin] else { return [] }
        let size: Int
        switch result {
        case .success(let payload): size = payload.count
        case .failure(let error): size = error.message.utf8.count
        }
        entries[origin] = .answered(result, at: now, bytes: size)
        answeredOrder.append(origin)
        bytes += size
        forgetOld(now: now)
        return waiters
    }

    /// Forgets answers older than the window, and the oldest while over the bounds.
    public mutating func forgetOld(now: Int64) {
        while answeredHead < answeredOrder.count {
            let origin = answeredOrder[answeredHead]
            guard case .answered(_, let at, let size)? = entries[origin] else {
                answeredHead += 1
                continue
            }
            let over = entries.count > maxEntries || bytes > maxBytes
            guard over || now - at > windowMs else { break }
            entries.removeValue(forKey: origin)
            bytes -= size
            answeredHead += 1
        }
        // Reclaim the consumed front of the order now and then.
        if answeredHead > 1024, answeredHead * 2 > answeredOrder.count {
            answeredOrder.removeFirst(answeredHead)
            answeredHead = 0
        }
    }
}
