import Dispatch
import HulyNetZMQ

/// Lets the process's shared ZeroMQ context (the one clients and agents use) go: the next socket
/// made gets a new one. The old one ends once its sockets are closed; this waits for that at most
/// `timeoutMs` and says whether it ended in time. For embedders that unload or reset the library
/// (hulynet_shutdown); close every client first.
public func releaseSharedZeroMQContext(timeoutMs: Int64) -> Bool {
    guard let context = ZMQContext.releaseShared() else { return true }
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        context.terminate()
        done.signal()
    }
    return done.wait(timeout: .now() + .milliseconds(Int(timeoutMs))) == .success
}
