/// Resumes a continuation once, whichever path gets there first (an answer, a timeout, a close,
/// a signal); later calls do nothing.
public final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private var continuation: CheckedContinuation<T, Never>?
    private let lock = Lock()

    public init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = continuation }

    public func resume(_ value: T) {
        let continuation = lock.withLock { () -> CheckedContinuation<T, Never>? in
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(returning: value)
    }
}
