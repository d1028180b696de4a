#if canImport(Glibc)
import Glibc
#endif

/// A plain mutex, for the few places where threads meet (mailboxes, completion slots).
/// Unlike `Synchronization.Mutex` it guards state that is not `Sendable` by itself, such as
/// closures bound for a loop thread; the guarded state is only ever touched under the lock.
public final class Lock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()

    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
