import CHulyNet
import Dispatch
import HulyNet
import HulyNetCore
import HulyNetSync

#if canImport(Glibc)
import Glibc
#endif

// The edge of the C API: handles, errors, strings and the bridge from blocking C calls to the
// Swift core's async API. Nothing here may trap on what a caller passes.

// MARK: - Status

/// A failure to report to C: a status code and a detailed message.
struct CFailure: Error {
    let status: Int32
    let message: String

    static func invalid(_ message: String) -> CFailure { CFailure(status: HULYNET_EINVAL, message: message) }
    static func json(_ message: String) -> CFailure { CFailure(status: HULYNET_EJSON, message: message) }
    static let closed = CFailure(status: HULYNET_ECLOSED, message: "the handle is closed")

    init(status: Int32, message: String) {
        self.status = status
        self.message = message
    }

    init(_ error: NetworkError) {
        switch error {
        case .bindFailed(let text): self.init(status: HULYNET_EBIND, message: "cannot bind \(text)")
        case .remote(let error):
            // By the error's code only (hulynet.h states the table; RemoteError(payload:) holds
            // the one rule for a TypeScript peer's text): a container's error that happens to say
            // "not found" stays HULYNET_EREMOTE.
            self.init(status: CFailure.status(of: error.code), message: error.message)
        case .timeout(let text): self.init(status: HULYNET_ETIMEOUT, message: "timed out: \(text)")
        case .closed: self = .closed
        case .invalid(let text): self.init(status: HULYNET_EINVAL, message: text)
        }
    }

    /// The status of a network error code (the table in hulynet.h).
    static func status(of code: NetworkErrorCode?) -> Int32 {
        switch code {
        case .containerNotFound, .noAgent, .agentGone: HULYNET_ENOTFOUND
        case .retryLater: HULYNET_EAGAIN
        case .limit: HULYNET_ELIMIT
        case .timeout: HULYNET_ETIMEOUT
        case .invalid, .forbidden, nil: HULYNET_EREMOTE
        }
    }

    init(_ error: any Error) {
        if let failure = error as? CFailure { self = failure; return }
        if let network = error as? NetworkError { self.init(network); return }
        self.init(status: HULYNET_EINTERNAL, message: "\(error)")
    }
}

/// Runs a C entry point: clears nothing on success, records the message of a failure for
/// hulynet_last_error, and returns the status.
@inline(__always)
func cCall(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return HULYNET_OK
    } catch {
        let failure = CFailure(error)
        LastError.set(failure.message)
        return failure.status
    }
}

// MARK: - Last error (thread-local)

enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in free(pointer) }
        return key
    }()

    static func set(_ message: String) {
        let copy = strdup(message)
        if let old = pthread_getspecific(key) { free(old) }
        pthread_setspecific(key, copy.map { UnsafeMutableRawPointer($0) })
    }

    static func get() -> UnsafePointer<CChar>? {
        guard let value = pthread_getspecific(key) else { return nil }
        return UnsafePointer(value.assumingMemoryBound(to: CChar.self))
    }
}

// MARK: - Strings

/// A C string argument as Swift text: NULL and invalid UTF-8 are refused.
func cString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws(CFailure) -> String {
    guard let pointer else { throw .invalid("\(name) is NULL") }
    guard let text = String(validatingCString: pointer) else { throw .invalid("\(name) is not valid UTF-8") }
    return text
}

/// A host argument: a name, an address or "*"; empty or malformed text is refused.
func cHost(_ pointer: UnsafePointer<CChar>?, _ name: String) throws(CFailure) -> String {
    let host = try cString(pointer, name)
    do { try checkHost(host, name) } catch { throw CFailure(error) }
    return host
}

func optionalCString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws(CFailure) -> String? {
    guard let pointer else { return nil }
    guard let text = String(validatingCString: pointer) else { throw .invalid("\(name) is not valid UTF-8") }
    return text
}

/// A JSON argument; NULL means `null` when `nullable`.
func cJSON(_ pointer: UnsafePointer<CChar>?, _ name: String, nullable: Bool = true) throws(CFailure) -> JSONValue {
    guard let pointer else {
        if nullable { return .null }
        throw .invalid("\(name) is NULL")
    }
    let length = strlen(pointer)
    do {
        return try pointer.withMemoryRebound(to: UInt8.self, capacity: length) { bytes throws(JSONError) in
            try JSONValue.parse(UnsafeRawBufferPointer(start: bytes, count: length))
        }
    } catch {
        throw .json("\(name): \(error.message)")
    }
}

/// A JSON text argument, validated and kept as the caller's bytes; NULL is `null` when nullable.
func cJSONText(_ pointer: UnsafePointer<CChar>?, _ name: String, nullable: Bool = true) throws(CFailure) -> JSONText {
    guard let pointer else {
        if nullable { return .null }
        throw .invalid("\(name) is NULL")
    }
    let bytes = Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
    do { return try JSONText(validating: bytes) } catch { throw .json("\(name): \(error.message)") }
}

/// A new malloc'd C string for the caller (freed with hulynet_free).
func newCString(_ text: String) -> UnsafeMutablePointer<CChar>? { strdup(text) }

/// The same for JSON text, byte for byte (valid JSON text holds no NUL byte).
func newCString(_ text: JSONText) -> UnsafeMutablePointer<CChar>? {
    let count = text.bytes.count
    guard let memory = malloc(count + 1)?.assumingMemoryBound(to: CChar.self) else { return nil }
    text.bytes.withUnsafeBytes { source in
        if let base = source.baseAddress { UnsafeMutableRawPointer(memory).copyMemory(from: base, byteCount: count) }
    }
    memory[count] = 0
    return memory
}

extension JSONText {
    /// Calls `body` with the text as a NUL-terminated C string, valid during the call.
    func withCString<Result>(_ body: (UnsafePointer<CChar>) throws -> Result) rethrows -> Result {
        var terminated = bytes
        terminated.append(0)
        return try terminated.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}

func setOut(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ value: JSONValue) throws(CFailure) {
    try setOut(out, JSONText(encoding: value))
}

func setOut(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ text: JSONText) throws(CFailure) {
    guard let out else { throw .invalid("the output pointer is NULL") }
    guard let copy = newCString(text) else { throw CFailure(status: HULYNET_EINTERNAL, message: "out of memory for a \(text.bytes.count)-byte answer") }
    out.pointee = copy
}

/// A string owned by a handle, for the accessor functions (`const char *` results).
final class OwnedCString: @unchecked Sendable {
    let text: String
    let pointer: UnsafeMutablePointer<CChar>?
    init(_ text: String) {
        self.text = text
        pointer = strdup(text)
    }
    deinit { free(pointer) }
    var constPointer: UnsafePointer<CChar>? { pointer.map { UnsafePointer($0) } }
}

// MARK: - Handles

/// Live handles. A handle is not an address but a number that is never reused (shown to C as an
/// opaque pointer), mapped to its Swift object: a destroyed, foreign or mistyped handle is an
/// error instead of a crash, always. Lookups take the object under the lock, so a concurrent
/// destroy cannot free it while a call is using it.
enum Handles {
    private static let lock = Lock()
    nonisolated(unsafe) private static var live: [UInt: AnyObject] = [:]
    /// Steps of 16 keep handles looking like aligned pointers to tools that inspect them.
    nonisolated(unsafe) private static var next: UInt = 0x1000

    static func make<T: AnyObject>(_ object: T) -> OpaquePointer {
        let id: UInt = lock.withLock {
            next &+= 16
            live[next] = object
            return next
        }
        return OpaquePointer(bitPattern: id)!
    }

    static func get<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type, _ name: String) throws(CFailure) -> T {
        guard let handle else { throw .invalid("\(name) is NULL") }
        let object = lock.withLock { live[UInt(bitPattern: handle)] }
        guard let object else { throw .invalid("\(name) is not a live handle (destroyed already?)") }
        guard let typed = object as? T else { throw .invalid("\(name) is a handle of another type") }
        return typed
    }

    /// How many handles are live (hulynet_shutdown refuses to run while any is).
    static var count: Int { lock.withLock { live.count } }

    /// The kinds of the live handles, for a message ("CClient, CReference").
    static var liveKinds: String {
        let names = lock.withLock { live.values.map { String(describing: type(of: $0)) } }
        return Set(names).sorted().joined(separator: ", ")
    }

    /// Removes the handle and returns its object (nil when it was not a live handle of that type).
    static func take<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type) -> T? {
        guard let handle else { return nil }
        let key = UInt(bitPattern: handle)
        return lock.withLock { () -> T? in
            guard let typed = live[key] as? T else { return nil }
            live.removeValue(forKey: key)
            return typed
        }
    }

}

// MARK: - Threads

/// Marks threads that are running a C callback: blocking calls from there would wait on the
/// thread they run on, so they are refused.
enum CallbackThread {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static var isInside: Bool { pthread_getspecific(key) != nil }

    static func run<T>(_ body: () -> T) -> T {
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, outer) }
        return body()
    }
}

/// Runs async Swift work from a blocking C call and waits for it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws(CFailure) -> T {
    if CallbackThread.isInside {
        throw .invalid("a blocking call from inside a hulynet callback would wait for its own thread: use the *_async variant")
    }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, any Error>?
    Task {
        do { result = .success(try await body()) } catch { result = .failure(error) }
        done.signal()
    }
    done.wait()
    switch result! {
    case .success(let value): return value
    case .failure(let error): throw CFailure(error)
    }
}

/// Runs a call that completes through a callback (on a library I/O thread) and waits for it: no
/// task in between, the quickest way from a blocking C call to the network and back.
func blockingCompletion<Value: Sendable>(_ start: (@escaping @Sendable (Result<Value, NetworkError>) -> Void) -> Void) throws(CFailure) -> Value {
    if CallbackThread.isInside {
        throw .invalid("a blocking call from inside a hulynet callback would wait for its own thread: use the *_async variant")
    }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<Value, NetworkError>?
    start { outcome in
        result = outcome
        done.signal()
    }
    done.wait()
    switch result! {
    case .success(let value): return value
    case .failure(let error): throw CFailure(error)
    }
}

/// A timeout argument: 0 means the default; negative or longer than a day is refused.
func timeout(_ ms: Int64, default defaultMs: Int64) throws(CFailure) -> Int64 {
    guard ms >= 0, ms <= Timeouts.maxMs else {
        throw .invalid("timeout_ms \(ms) is out of range (0 for the default, else 1 to \(Timeouts.maxMs))")
    }
    return ms > 0 ? ms : defaultMs
}

/// A C pointer passed back to C callbacks untouched.
struct UserPointer: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer?
}
