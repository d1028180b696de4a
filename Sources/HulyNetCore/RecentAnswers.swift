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

    /// The trailing element the coordinator adds to a forwarded `cs`: `[client, request]` (a
    /// TypeScript agent reads only the first two elements and ignores it).
    public var json: JSONValue { .array([.string(client), .string(request)]) }

    public init?(json: JSONValue?) {
        guard case .array(let pair)? = json, pair.count >= 2, let client = pair[0].stringValue,
              let request = pair[1].stringValue, !client.isEmpty, !request.isEmpty else { return nil }
        self.init(client: client, request: request)
    }

    /// The same read in place from `range` of validated text.
    public init?(in bytes: [UInt8], at range: Range<Int>) {
        guard let items = JSONScanner.elementsOfValidArray(bytes, in: range), items.count >= 2,
              let client = JSONScanner.stringValue(bytes, in: items[0]),
              let request = JSONScanner.stringValue(bytes, in: items[1]), !client.isEmpty, !request.isEmpty else { return nil }
        self.init(client: client, request: request)
    }

    /// Both ids as one byte key: hashed in one call, compared with one memcmp.
    @inlinable
    public var key: FrameKey {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(client.utf8.count + request.utf8.count + 1)
        bytes.append(contentsOf: client.utf8)
        bytes.append(0) // ids never hold a NUL: no two pairs make one key
        bytes.append(contentsOf: request.utf8)
        return FrameKey(bytes)
    }
}

/// Exactly-once for resent requests: remembers the answers to recent requests by origin for a
/// bounded window, so that a resend is answered from memory, and lets a resend that arrives while
/// the first run is still going join it. Bounded in entries and in answer bytes; the oldest
/// answers are forgotten first. Each request costs one dictionary probe when it arrives, one when
/// it is answered and one when its answer is forgotten.
///
/// Not thread-safe: its owner serialises access. `Waiter` is whatever the owner needs to answer.
/// Inlinable, so that it is specialised for the owner's `Waiter`: it runs once per forwarded
/// request, on the agent's hot path.
public struct RecentAnswers<Waiter> {
    public enum Admission {
        /// New: run it, then call `finish`.
        case run
        /// The first run is still going: the waiter is answered by its `finish`.
        case joined
        /// Already answered: answer this again, without running it.
        case answered(Result<[UInt8], RemoteError>)
    }

    @usableFromInline
    enum Entry {
        case running([Waiter])
        case answered(Result<[UInt8], RemoteError>)
    }

    /// An answer remembered, in the order they are forgotten.
    @usableFromInline
    struct Remembered {
        @usableFromInline let key: FrameKey
        @usableFromInline let at: Int64
        @usableFromInline let bytes: Int

        @inlinable
        init(key: FrameKey, at: Int64, bytes: Int) {
            self.key = key
            self.at = at
            self.bytes = bytes
        }
    }

    public let windowMs: Int64
    public let maxEntries: Int
    public let maxBytes: Int
    @usableFromInline var entries: [FrameKey: Entry] = [:]
    /// Answered entries, oldest first.
    @usableFromInline var answeredOrder: [Remembered] = []
    @usableFromInline var answeredHead = 0
    @usableFromInline var storedBytes = 0

    public init(windowMs: Int64 = 120_000, maxEntries: Int = 100_000, maxBytes: Int = 64 << 20) {
        self.windowMs = windowMs
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    public var count: Int { entries.count }
    /// Bytes of the answers remembered.
    public var bytes: Int { storedBytes }
    /// The length of the order kept (for tests: it is reclaimed as answers are forgotten).
    var answeredOrderStorage: Int { answeredOrder.count }

    /// A request arrives with this origin; `waiter` is kept only when it joins a run under way.
    @inlinable
    public mutating func admit(_ origin: RequestOrigin, waiter: Waiter, now: Int64) -> Admission {
        admit(origin.key, waiter: waiter, now: now)
    }

    /// `admit` by the origin's key (made once per request by the caller).
    @inlinable
    public mutating func admit(_ key: FrameKey, waiter: Waiter, now: Int64) -> Admission {
        forgetOld(now: now)
        // One probe for the usual case, a request seen for the first time.
        guard let previous = entries.updateValue(.running([]), forKey: key) else { return .run }
        switch previous {
        case .running(var waiters):
            waiters.append(waiter)
            entries[key] = .running(waiters)
            return .joined
        case .answered(let result):
            entries[key] = previous
            return .answered(result)
        }
    }

    /// The first run answered: returns the waiters that joined it, to answer the same.
    @inlinable
    public mutating func finish(_ origin: RequestOrigin, _ result: Result<[UInt8], RemoteError>, now: Int64) -> [Waiter] {
        finish(origin.key, result, now: now)
    }

    @inlinable
    public mutating func finish(_ key: FrameKey, _ result: Result<[UInt8], RemoteError>, now: Int64) -> [Waiter] {
        let size: Int
        switch result {
        case .success(let payload): size = payload.count
        case .failure(let error): size = error.message.utf8.count
        }
        let previous = entries.updateValue(.answered(result), forKey: key)
        guard case .running(let waiters)? = previous else {
            // Not running (answered already, or never admitted): nothing new to remember.
            entries[key] = previous
            return []
        }
        answeredOrder.append(Remembered(key: key, at: now, bytes: size))
        storedBytes += size
        forgetOld(now: now)
        return waiters
    }

    /// Forgets answers older than the window, and the oldest while over the bounds.
    @inlinable
    public mutating func forgetOld(now: Int64) {
        while answeredHead < answeredOrder.count {
            let oldest = answeredOrder[answeredHead]
            let over = entries.count > maxEntries || storedBytes > maxBytes
            guard over || now - oldest.at > windowMs else { break }
            entries.removeValue(forKey: oldest.key)
            storedBytes -= oldest.bytes
            answeredHead += 1
        }
        // Reclaim the consumed front of the order now and then.
        if answeredHead > 1024, answeredHead * 2 > answeredOrder.count {
            answeredOrder.removeFirst(answeredHead)
            answeredHead = 0
        }
    }
}
