import HulyNetZMQ

#if canImport(Glibc)
import Glibc
#endif

/// A process of this executable (`hulynet server`, `hulynet raw-broker`) that a bench case
/// measures from outside: its CPU time and resident memory, read from /proc.
final class ChildProcess {
    let pid: pid_t
    /// The port the child printed on its first line ("... listening on HOST:PORT").
    let port: Int
    private var stopped = false

    /// Starts `hulynet <arguments>` and waits up to `timeoutMs` for the line with its port.
    init(arguments: [String], timeoutMs: Int32 = 10_000) throws {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        defer { close(pipeEnds[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        let executable = try Self.ownExecutable()
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(pipeEnds[1])
        guard spawned == 0 else { throw BenchError("spawn \(executable): \(String(cString: strerror(spawned)))") }
        pid = child

        // The first line names the port; the rest of the child's output is not read, so the
        // child must print nothing more than a pipe holds (the server's counts are turned off).
        var line: [UInt8] = []
        let deadline = MonotonicClock.nowMs() + Int64(timeoutMs)
        while !line.contains(0x0A) {
            var poller = pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)
            let left = Int32(max(0, deadline - MonotonicClock.nowMs()))
            var byte: UInt8 = 0
            guard left > 0, poll(&poller, 1, left) == 1, read(pipeEnds[0], &byte, 1) == 1 else {
                kill(pid, SIGKILL)
                waitpid(pid, nil, 0)
                throw BenchError("hulynet \(arguments.joined(separator: " ")) did not print its port: \(String(decoding: line, as: UTF8.self))")
            }
            line.append(byte)
        }
        let text = String(decoding: line.dropLast(), as: UTF8.self)
        guard let portText = text.split(separator: ":").last, let port = Int(portText) else {
            kill(pid, SIGKILL)
            waitpid(pid, nil, 0)
            throw BenchError("no port in the child's first line: \(text)")
        }
        self.port = port
    }

    /// Nanoseconds the child's threads have run on a CPU (the sum of /proc/PID/task/*/schedstat).
    func cpuNanoseconds() -> UInt64 {
        guard let directory = opendir("/proc/\(pid)/task") else { return 0 }
        defer { closedir(directory) }
        var total: UInt64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true,
                  let text = Self.readText("/proc/\(pid)/task/\(name)/schedstat"),
                  let first = text.split(separator: " ").first, let onCPU = UInt64(first) else { continue }
            total += onCPU
        }
        return total
    }

    /// The child's resident memory in bytes (/proc/PID/statm).
    func residentBytes() -> Int {
        guard let text = Self.readText("/proc/\(pid)/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s.
    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGTERM)
        let deadline = MonotonicClock.nowMs() + 5000
        while MonotonicClock.nowMs() < deadline {
            if waitpid(pid, nil, WNOHANG) == pid { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
    }

    deinit { stop() }

    private static func ownExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw BenchError("cannot find this executable: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
