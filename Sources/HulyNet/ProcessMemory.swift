#if canImport(Glibc)
import Glibc
#endif

/// The C library's heap, tuned so that memory a burst of large messages used goes back to the
/// system afterwards. glibc only: looked up at run time (Swift's Glibc module does not declare
/// these), and no-ops elsewhere.
public enum ProcessMemory {
    private typealias Trim = @convention(c) (Int) -> Int32
    private typealias Option = @convention(c) (Int32, Int32) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        guard let found = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(found, to: type)
    }

    nonisolated(unsafe) private static let trim = symbol("malloc_trim", as: Trim.self)
    nonisolated(unsafe) private static let option = symbol("mallopt", as: Option.self)

    /// malloc_trim(0): returns the free pages of every arena to the system (but not the free top
    /// of a thread's arena: see `mapLargeAllocations`).
    public static func releaseFreed() {
        _ = trim?(0)
    }

    /// Allocations of `thresholdBytes` or more get pages of their own, returned when freed.
    /// By default glibc raises this threshold to the largest block freed so far (up to 32 MiB)
    /// and then keeps up to twice that free at the top of each thread's arena, for good: after
    /// a few 8-16 MiB messages a server held 16 MiB more, at random. Setting it fixes it. For a
    /// process of our own (the command-line server), not for a library's host.
    public static func mapLargeAllocations(thresholdBytes: Int32 = 1 << 20) {
        let mmapThreshold: Int32 = -3 // M_MMAP_THRESHOLD
        _ = option?(mmapThreshold, thresholdBytes)
    }
}
