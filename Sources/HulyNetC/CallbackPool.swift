import CHulyNet
import HulyNetSync

#if canImport(Glibc)
import Glibc
#endif

// C, C++ and Python callbacks run here: on threads the library owns, never on Swift's
// cooperative pool (one thread per core) nor on a client's I/O thread, so a callback that blocks
// delays only itself and the callbacks queued behind it, not the library.

/// A mutex with a condition variable, at a fixed address (pthread objects must not move).
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal; call under withLock.
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
    func signal() { pthread_cond_signal(condition) }
}

/// A first-in first-out queue without the O(n) removeFirst of an Array.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func push(_ item: Element) { items.append(item) }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: items.count <= 1024)
            head = 0
        } else if head >= 1024, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}

typealias CallbackJob = @Sendable () -> Void

/// The process's callback threads: a fixed number (hulynet_set_callback_threads, or the
/// HULYNET_CALLBACK_THREADS environment variable, else max(4, 2 x cores)) taking jobs from one
/// queue. Threads start on first use and when the size grows; surplus ones end when idle.
final class CallbackPool: @unchecked Sendable {
    static let shared = CallbackPool(size: CallbackPool.initialSize())

    static let maxThreads = 1024

    static var defaultSize: Int { max(4, 2 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The environment's size when it is a number in range, else the default (a bad value is
    /// ignored rather than fatal: the variable is read long after the process started).
    static func initialSize() -> Int {
        if let text = getenv("HULYNET_CALLBACK_THREADS").flatMap({ String(validatingCString: $0) }),
           let value = Int(text), value >= 1, value <= maxThreads {
            return value
        }
        return defaultSize
    }

    private let monitor = Monitor()
    private var jobs = FIFO<CallbackJob>()
    private var target: Int
    private var live = 0
    private var idle = 0

    private init(size: Int) { target = size }

    var size: Int { monitor.withLock { target } }

    /// Sets the number of threads: more start at once, surplus ones end once idle.
    func resize(_ size: Int) {
        let toStart = monitor.withLock { () -> Int in
            target = size
            monitor.broadcast() // idle surplus threads see the new target and end
            return max(0, target - live)
        }
        startThreads(toStart)
    }

    func submit(_ job: @escaping CallbackJob) {
        let toStart = monitor.withLock { () -> Int in
            jobs.push(job)
            if idle > 0 { monitor.signal() }
            return max(0, target - live)
        }
        if toStart > 0 { startThreads(toStart) }
    }

    private func startThreads(_ count: Int) {
        guard count > 0 else { return }
        // Counted before they run, so that concurrent submits do not start extra ones.
        let started = monitor.withLock { () -> Int in
            let missing = max(0, target - live)
            let now = min(count, missing)
            live += now
            return now
        }
        for _ in 0..<started {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            var thread = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            let result = pthread_create(&thread, &attributes, { argument in
                let pool = Unmanaged<CallbackPool>.fromOpaque(argument!).takeRetainedValue()
                pool.work()
                return nil
            }, box)
            pthread_attr_destroy(&attributes)
            if result != 0 {
                Unmanaged<CallbackPool>.fromOpaque(box).release()
                monitor.withLock { live -= 1 }
            }
        }
    }

    private func work() {
        // Named so that a debugger, `top -H` and the tests can tell callback threads apart.
        setThreadName("hulynet-cb")
        while true {
            let job: CallbackJob? = monitor.withLock {
                while true {
                    if live > target { live -= 1; return nil }
                    if let job = jobs.pop() { return job }
                    idle += 1
                    monitor.wait()
                    idle -= 1
                }
            }
            guard let job else { return }
            job()
        }
    }
}

/// Callbacks that must run one at a time and in order (a connection's events, a client's
/// network events, a container's connect / disconnect / terminate), on the pool.
final class CallbackLane: @unchecked Sendable {
    private let lock = Lock()
    private var pending = FIFO<() -> Void>()
    private var scheduled = false

    func submit(_ job: @escaping () -> Void) {
        let schedule = lock.withLock { () -> Bool in
            pending.push(job)
            if scheduled { return false }
            scheduled = true
            return true
        }
        if schedule { CallbackPool.shared.submit { self.drain() } }
    }

    /// Runs `job` after the jobs queued now: at once, on this thread, when none is queued or
    /// running (it must be short: the answer to a blocking call, say), else queued behind them.
    func afterPending(_ job: @escaping () -> Void) {
        let now = lock.withLock { () -> Bool in
            if scheduled {
                pending.push(job)
                return false
            }
            return true
        }
        if now { job() }
    }

    /// Runs a bounded batch, then gives the thread back so that one busy lane cannot hold it.
    private func drain() {
        for _ in 0..<64 {
            let job = lock.withLock { () -> (() -> Void)? in
                guard let job = pending.pop() else {
                    scheduled = false
                    return nil
                }
                return job
            }
            guard let job else { return }
            job()
        }
        CallbackPool.shared.submit { self.drain() }
    }
}

/// A C handler that may carry a destroy notification for its user pointer.
protocol CHandler {
    /// Calls the destroy notification, if any (once: the slot retires each handler once).
    func destroyed()
}

/// A replaceable C handler (an event, moved, listener or log function). Once `set` returns, the
/// previous handler is not called again; its destroy notification comes once no call of the
/// slot is in progress.
final class CallbackSlot<Handler: CHandler>: @unchecked Sendable {
    private let monitor = Monitor()
    private var handler: Handler?
    private var inProgress = 0
    /// Replaced handlers whose destroy notification waits for the calls in progress.
    private var retired: [Handler] = []

    init(_ handler: Handler? = nil) { self.handler = handler }

    /// Whether a handler is set: what arrives while none is set is dropped, as documented.
    var isSet: Bool { monitor.withLock { handler != nil } }

    /// Calls `body` with the handler current now, if any.
    func call(_ body: (Handler) -> Void) {
        let current = monitor.withLock { () -> Handler? in
            if handler != nil { inProgress += 1 }
            return handler
        }
        guard let current else { return }
        body(current)
        let done = monitor.withLock { () -> [Handler] in
            inProgress -= 1
            guard inProgress == 0 else { return [] }
            monitor.broadcast()
            defer { retired.removeAll() }
            return retired
        }
        for old in done { old.destroyed() }
    }

    /// Replaces the handler. Outside a callback it also waits for calls in progress to return
    /// (so the caller may free what they used); inside one it does not, since two callbacks
    /// removing each other would wait for each other forever.
    func set(_ new: Handler?) {
        let mayWait = !CallbackThread.isInside
        let done = monitor.withLock { () -> [Handler] in
            if let old = handler { retired.append(old) }
            handler = new
            while mayWait, inProgress > 0 { monitor.wait() }
            guard inProgress == 0 else { return [] }
            defer { retired.removeAll() }
            return retired
        }
        for old in done { old.destroyed() }
    }

    /// Queues a call on `lane` for something that arrived now: dropped if no handler is set now,
    /// else given to the handler current when it runs.
    func deliver(on lane: CallbackLane, _ body: @escaping (Handler) -> Void) {
        guard isSet else { return }
        lane.submit { self.call(body) }
    }
}

/// pthread_setname_np, which Glibc's Swift module leaves out (it is a GNU extension).
private func setThreadName(_ name: String) {
    typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>?) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pthread_setname_np") else { return }
    let setName = unsafeBitCast(symbol, to: SetName.self)
    _ = name.withCString { setName(pthread_self(), $0) }
}

@_cdecl("hulynet_set_callback_threads")
public func hulynet_set_callback_threads(_ count: Int32) -> Int32 {
    cCall {
        guard count >= 0, count <= Int32(CallbackPool.maxThreads) else {
            throw CFailure.invalid("count \(count) is out of range (0 for the default, else 1 to \(CallbackPool.maxThreads))")
        }
        CallbackPool.shared.resize(count == 0 ? CallbackPool.initialSize() : Int(count))
    }
}

@_cdecl("hulynet_callback_threads")
public func hulynet_callback_threads() -> Int32 {
    Int32(CallbackPool.shared.size)
}
