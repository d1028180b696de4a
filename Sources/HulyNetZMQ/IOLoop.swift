import CZeroMQ
import HulyNetSync
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One thread that owns a set of ZeroMQ sockets: it polls them, runs their handlers, runs
/// periodic timers and runs work handed to it from other threads.
///
/// Threading rule: sockets registered here, and every state reached from their handlers, are
/// touched only on the loop thread. Other threads talk to the loop only through `execute`.
public final class IOLoop: @unchecked Sendable {
    public let name: String

    private struct Mailbox {
        var work: [() -> Void] = []
        var wakePending = false
        var stopped = false
    }

    private let mailboxLock = Lock()
    private var mailbox = Mailbox()
    private let wakeFD: Int32
    private var thread: pthread_t?
    private let threadId = Atomic<UInt>(0)

    // Loop-thread state.
    /// Work handed over on the loop thread itself: run at the end of the current turn, with no
    /// lock and no wake-up.
    private var localWork: [() -> Void] = []
    private var sockets: [(socket: ZMQSocket, handler: () -> Void)] = []
    /// The poll set is rebuilt only after a register or unregister, not on every wake-up.
    private var socketsChanged = true
    private var timers: [Timer] = []
    private var nextTimerId = 1
    private var running = true

    private struct Timer {
        let id: Int
        let intervalMs: Int64
        let repeats: Bool
        var due: Int64
        let body: () -> Void
    }

    public struct TimerID: Hashable, Sendable { let raw: Int }

    public init(name: String) {
        self.name = name
        wakeFD = hulynet_wake_fd()
        precondition(wakeFD >= 0, "eventfd failed")
    }

    deinit { close(wakeFD) }

    /// Starts the loop thread.
    public func start() {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let loop = Unmanaged<IOLoop>.fromOpaque(raw!).takeRetainedValue()
            loop.run()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        thread = tid
    }

    /// True when called on this loop's thread.
    public var inLoop: Bool { threadId.load(ordering: .acquiring) == UInt(pthread_self()) }

    /// Runs `work` on the loop thread, soon. Returns false if the loop has stopped.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        executeUnchecked(work)
    }

    /// Like `execute`, for closures whose captured state is confined to the loop thread by design.
    @discardableResult
    public func executeUnchecked(_ work: @escaping () -> Void) -> Bool {
        if inLoop {
            localWork.append(work)
            return true
        }
        let needWake: Bool? = mailboxLock.withLock {
            if mailbox.stopped { return nil }
            mailbox.work.append(work)
            if mailbox.wakePending { return false }
            mailbox.wakePending = true
            return true
        }
        guard let needWake else { return false }
        if needWake {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
        return true
    }

    /// Runs `body` on the loop thread and waits for its result; nil if the loop has stopped.
    /// On the loop thread itself it runs `body` at once.
    public func sync<T>(_ body: @escaping () -> T) -> T? {
        if inLoop { return body() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        guard executeUnchecked({ result = body(); done.signal() }) else { return nil }
        done.wait()
        return result
    }

    /// Stops the loop after the work already queued. From another thread it waits for the loop
    /// thread to end; from the loop thread itself it returns at once and the loop ends after the
    /// current handler.
    public func stop() {
        executeUnchecked { [self] in running = false }
        if !inLoop, let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    // MARK: loop-thread API

    /// Registers a socket; `handler` runs on the loop thread whenever it is readable.
    public func register(_ socket: ZMQSocket, handler: @escaping () -> Void) {
        sockets.append((socket, handler))
        socketsChanged = true
    }

    public func unregister(_ socket: ZMQSocket) {
        sockets.removeAll { $0.socket === socket }
        socketsChanged = true
    }

    /// Runs `body` every `intervalMs` milliseconds, first after one interval.
    @discardableResult
    public func every(milliseconds intervalMs: Int, _ body: @escaping () -> Void) -> TimerID {
        addTimer(afterMs: Int64(max(1, intervalMs)), repeats: true, body)
    }

    /// Runs `body` once, after `delayMs` milliseconds.
    @discardableResult
    public func after(milliseconds delayMs: Int, _ body: @escaping () -> Void) -> TimerID {
        addTimer(afterMs: Int64(max(0, delayMs)), repeats: false, body)
    }

    private func addTimer(afterMs delay: Int64, repeats: Bool, _ body: @escaping () -> Void) -> TimerID {
        let id = nextTimerId
        nextTimerId += 1
        timers.append(Timer(id: id, intervalMs: delay, repeats: repeats, due: MonotonicClock.nowMs() + delay, body: body))
        return TimerID(raw: id)
    }

    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer.raw }
    }

    private func run() {
        threadId.store(UInt(pthread_self()), ordering: .releasing)
        var poller = ZMQPoller()
        var polled: [(socket: ZMQSocket, handler: () -> Void)] = []
        while running {
            if socketsChanged {
                socketsChanged = false
                poller = ZMQPoller()
                poller.add(fd: wakeFD)
                polled = sockets.filter { $0.socket.handle != nil }
                for entry in polled { poller.add(entry.socket) }
            }
            do {
                _ = try poller.poll(timeoutMs: localWork.isEmpty ? nextTimeout() : 0)
            } catch {
                // A socket was closed without being unregistered first: drop it and carry on.
                sockets.removeAll { $0.socket.handle == nil }
                socketsChanged = true
                continue
            }
            if poller.isReadable(0) { drainMailbox() }
            for (index, entry) in polled.enumerated() where running && poller.isReadable(index + 1) {
                if entry.socket.handle != nil { entry.handler() }
            }
            runDueTimers()
            runLocalWork()
        }
        mailboxLock.withLock { mailbox.stopped = true }
        drainMailbox()
        while !localWork.isEmpty { runLocalWork() }
        sockets.removeAll()
        timers.removeAll()
    }

    private func drainMailbox() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        var work: [() -> Void] = []
        mailboxLock.withLock {
            mailbox.wakePending = false
            swap(&work, &mailbox.work)
        }
        for item in work { item() }
    }

    /// Runs the local work queued so far; what that work queues runs in the next turn, after
    /// the sockets have been served.
    private func runLocalWork() {
        guard !localWork.isEmpty else { return }
        var work: [() -> Void] = []
        swap(&work, &localWork)
        for item in work { item() }
    }

    private func nextTimeout() -> Int {
        guard let due = earliestDue() else { return -1 }
        return Int(max(0, due - MonotonicClock.nowMs()))
    }

    private func earliestDue() -> Int64? {
        var earliest: Int64?
        for timer in timers where earliest == nil || timer.due < earliest! { earliest = timer.due }
        return earliest
    }

    private func runDueTimers() {
        let now = MonotonicClock.nowMs()
        guard let earliest = earliestDue(), earliest <= now else { return }
        // Bodies may add or cancel timers: pick the due ones first, then run them.
        var due: [() -> Void] = []
        timers.removeAll { timer in
            guard timer.due <= now else { return false }
            due.append(timer.body)
            return !timer.repeats
        }
        for index in timers.indices where timers[index].due <= now {
            timers[index].due = now + timers[index].intervalMs
        }
        for body in due { body() }
    }
}

/// A task that prefers this executor (`withTaskExecutorPreference(loop)`) runs its code on the
/// loop thread: its calls to the loop's sockets and the answers' continuations then cross no
/// thread. That code must not block, since the loop's sockets wait while it runs.
extension IOLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        if !executeUnchecked({ job.runSynchronously(on: executor) }) {
            // The loop has stopped: the task goes on elsewhere rather than never.
            globalConcurrentExecutor.enqueue(job)
        }
    }
}
