import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A failure to start, watch or stop a child process, with what was seen of it.
public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a child process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A child process run from outside, as a supervisor would: spawned with posix_spawn, its
/// standard output and error written to files (never a pipe that could fill and block it), its
/// memory and CPU time read from /proc, signalled, and waited for with deadlines.
///
/// Used by the multi-process tests (Tests/HulyNetProcessTests) and by `hulynet bench`, which
/// measure `hulynet` processes from outside. Not thread-safe: one owner drives it. The child is
/// killed and reaped when the object goes away, whatever happened before.
public final class ChildProcess {
    public let pid: pid_t
    public let executable: String
    public let arguments: [String]
    /// Files holding everything the child wrote so far.
    public let stdoutPath: String
    public let stderrPath: String
    /// Keep the output files when this object goes (otherwise they are removed, and the directory
    /// made for them). HULYNET_KEEP_CHILD_OUTPUT=1 in the environment keeps them by default.
    public var keepsOutput = getenv("HULYNET_KEEP_CHILD_OUTPUT") != nil
    /// The directory made for the output files, removed with them; nil when the caller gave one.
    private let ownDirectory: String?
    private var exitStatus: ExitStatus?

    /// Starts `executable arguments...`. `environment` is added to (and overrides) this
    /// process's. `fileLimit` sets the child's `ulimit -n` (soft and hard), through `/bin/sh`
    /// which then execs the program: `pid` is the program's own. Output goes to fresh files in
    /// `outputDirectory` (default: a new directory under $TMPDIR or /tmp).
    public init(executable: String, arguments: [String], environment: [String: String] = [:],
                fileLimit: Int? = nil, outputDirectory: String? = nil) throws {
        self.executable = executable
        self.arguments = arguments
        ownDirectory = outputDirectory == nil ? try Self.makeTemporaryDirectory() : nil
        let directory = outputDirectory ?? ownDirectory!
        let name = executable.split(separator: "/").last.map(String.init) ?? "child"
        let stem = "\(directory)/\(name)-\(Self.nextSerial())"
        stdoutPath = stem + ".out"
        stderrPath = stem + ".err"

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // A group of its own: a terminal's Ctrl-C reaches the test runner, which cleans up.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var argv = [executable] + arguments
        var program = executable
        if let fileLimit {
            guard fileLimit > 0 else { throw ChildProcessError("file limit \(fileLimit) must be positive") }
            // sh's $0 is the program, "$@" its arguments: no quoting of them is needed.
            program = "/bin/sh"
            argv = ["/bin/sh", "-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\""] + argv
        }
        var merged: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                merged[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        for (key, value) in environment { merged[key] = value }
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, program, &actions, &attributes, cArguments, cEnvironment)
        guard spawned == 0 else {
            if let ownDirectory { Self.remove([stdoutPath, stderrPath], ownDirectory) }
            throw ChildProcessError("cannot start \(program): \(String(cString: strerror(spawned)))")
        }
        pid = child
    }

    deinit {
        kill()
        if !keepsOutput { Self.remove([stdoutPath, stderrPath], ownDirectory) }
    }

    private static func remove(_ files: [String], _ directory: String?) {
        for file in files { unlink(file) }
        if let directory { rmdir(directory) }
    }

    /// The path of the running executable (/proc/self/exe), to run this program again.
    public static func ownExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw ChildProcessError("cannot find this executable: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Output

    public enum Stream: Sendable { case stdout, stderr }

    /// Everything the child wrote to `stream` so far.
    public func output(_ stream: Stream = .stdout) -> String {
        Self.readFile(stream == .stdout ? stdoutPath : stderrPath) ?? ""
    }

    /// Bytes the child wrote to `stream` so far.
    public func outputBytes(_ stream: Stream = .stdout) -> Int {
        var info = stat()
        return stat(stream == .stdout ? stdoutPath : stderrPath, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Waits for a whole line of `stream` containing `text` and returns it. Throws, with what
    /// the child wrote, when `timeoutMs` passes or the child exits first.
    @discardableResult
    public func waitForLine(containing text: String, in stream: Stream = .stdout, timeoutMs: Int) throws -> String {
        var found: String?
        try waitFor("a line containing '\(text)'", timeoutMs: timeoutMs) {
            found = output(stream).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                .first { $0.contains(text) }.map(String.init)
            return found != nil
        }
        return found!
    }

    /// The port of the first "... listening on HOST:PORT" line (hulynet server, raw-broker).
    public func waitForListeningPort(timeoutMs: Int) throws -> Int {
        let line = try waitForLine(containing: "listening on ", timeoutMs: timeoutMs)
        guard let text = line.split(separator: ":").last, let port = Int(text), (1...65535).contains(port) else {
            throw ChildProcessError("no port in \(line)")
        }
        return port
    }

    /// Polls `condition` every few milliseconds until it holds; throws when `timeoutMs` passes or
    /// the child exits first, naming `what` and showing the child's output.
    public func waitFor(_ what: String, timeoutMs: Int, _ condition: () throws -> Bool) throws {
        let deadline = Self.nowMs() + Int64(timeoutMs)
        while true {
            if try condition() { return }
            if !isRunning {
                // It may have written what we wait for between the check and its exit: its output
                // is complete now, so look once more.
                if try condition() { return }
                throw failure("exited (\(exitStatus.map { "\($0)" } ?? "?")) before \(what)")
            }
            if Self.nowMs() >= deadline { throw failure("no \(what) within \(timeoutMs) ms") }
            usleep(5_000)
        }
    }

    /// An error naming this child, with the end of what it wrote.
    public func failure(_ message: String) -> ChildProcessError {
        let out = output(.stdout).suffix(2000)
        let err = output(.stderr).suffix(2000)
        return ChildProcessError("\(executable) \(arguments.joined(separator: " ")) (pid \(pid)): \(message)\n--- stdout\n\(out)\n--- stderr\n\(err)")
    }

    // MARK: - Measures (Linux /proc)

    /// Resident memory now (VmRSS), in bytes; nil once the child is gone.
    public func residentBytes() -> Int? { statusKilobytes("VmRSS:").map { $0 * 1024 } }

    /// The highest resident memory since start or since `resetPeakResident()` (VmHWM), in bytes.
    public func peakResidentBytes() -> Int? { statusKilobytes("VmHWM:").map { $0 * 1024 } }

    /// Starts the peak (VmHWM) again from the resident memory now, so that a peak measured after
    /// is that of what came since.
    public func resetPeakResident() throws {
        guard let file = fopen("/proc/\(pid)/clear_refs", "w") else {
            throw ChildProcessError("cannot open /proc/\(pid)/clear_refs: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        guard fputs("5", file) >= 0, fflush(file) == 0 else { throw ChildProcessError("cannot reset the peak of \(pid)") }
    }

    /// Nanoseconds the child's threads have run on a CPU (the sum of /proc/PID/task/*/schedstat).
    public func cpuNanoseconds() -> UInt64 {
        guard let directory = opendir("/proc/\(pid)/task") else { return 0 }
        defer { closedir(directory) }
        var total: UInt64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true,
                  let text = Self.readFile("/proc/\(pid)/task/\(name)/schedstat"),
                  let first = text.split(separator: " ").first, let onCPU = UInt64(first) else { continue }
            total += onCPU
        }
        return total
    }

    /// The child's open file descriptors (entries of /proc/PID/fd).
    public func openFileCount() -> Int {
        guard let directory = opendir("/proc/\(pid)/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    private func statusKilobytes(_ field: String) -> Int? {
        guard isRunning, let text = Self.readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            return line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }

    // MARK: - Signals and exit

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, SIGCONT, ...) unless the child was reaped.
    public func send(_ signal: Int32) {
        guard exitStatus == nil else { return }
        Glibc.kill(pid, signal)
    }

    /// Whether the child still runs (a stopped child runs; one that exited does not).
    public var isRunning: Bool {
        reap(blocking: false)
        return exitStatus == nil
    }

    /// How the child ended, or nil if it has not yet.
    public var status: ExitStatus? {
        reap(blocking: false)
        return exitStatus
    }

    /// Waits up to `timeoutMs` for the child to exit; nil if it still runs.
    @discardableResult
    public func waitForExit(timeoutMs: Int) -> ExitStatus? {
        let deadline = Self.nowMs() + Int64(timeoutMs)
        while exitStatus == nil {
            reap(blocking: false)
            if exitStatus != nil || Self.nowMs() >= deadline { break }
            usleep(5_000)
        }
        return exitStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within `graceMs`; returns how it ended.
    @discardableResult
    public func stop(graceMs: Int = 5000) -> ExitStatus {
        send(SIGCONT) // a stopped child cannot act on SIGTERM
        send(SIGTERM)
        if let status = waitForExit(timeoutMs: graceMs) { return status }
        kill()
        return exitStatus ?? .signaled(SIGKILL)
    }

    /// SIGKILL and reap; idempotent.
    public func kill() {
        guard exitStatus == nil else { return }
        Glibc.kill(pid, SIGKILL)
        reap(blocking: true)
    }

    private func reap(blocking: Bool) {
        guard exitStatus == nil else { return }
        var raw: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &raw, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
        guard result == pid else {
            if result < 0 { exitStatus = .signaled(0) } // not our child any more: nothing to wait for
            return
        }
        // WIFEXITED / WTERMSIG, which Swift does not import.
        exitStatus = raw & 0x7F == 0 ? .exited((raw >> 8) & 0xFF) : .signaled(raw & 0x7F)
    }

    // MARK: - Helpers

    public static func nowMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    private static let serial = Atomic<Int>(0)

    private static func nextSerial() -> Int {
        serial.add(1, ordering: .relaxed).newValue
    }

    private static func makeTemporaryDirectory() throws -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/hulynet-child.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ChildProcessError("cannot make a directory under \(base): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
