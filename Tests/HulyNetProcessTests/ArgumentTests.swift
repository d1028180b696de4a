import HulyNetProcess
import XCTest

// Every argument is checked at the edge: the `hulynet` command line refuses ports outside
// 0-65535, empty or malformed hosts, and negative or absurd timeouts and limits with a clear
// message and a non-zero exit, never a silent wrap (`--port 99999` once bound port 34463).
// The C API's checks are in tests/c/test_misuse.c, the bindings' in their own tests.

final class ArgumentTests: ProcessTestCase {
    func testCommandLineRefusesArgumentsOutOfRange() throws {
        let cases: [(arguments: [String], environment: [String: String], message: String)] = [
            (["server", "--port", "99999"], [:], "port 99999 is out of range (0 to 65535)"),
            (["server", "--port", "-1"], [:], "port -1 is out of range"),
            (["server"], ["PORT": "70000"], "port 70000 is out of range"),
            (["server", "--host", ""], [:], "host is empty"),
            (["server", "--host", "a b"], [:], "host 'a b' is not a host name or address"),
            (["server", "--host", "tcp://127.0.0.1"], [:], "is not a host name or address"),
            (["server", "--max-clients", "0"], [:], "max clients 0 is out of range"),
            (["server", "--handshake-timeout-ms", "-5"], [:], "handshake timeout (ms) -5 is out of range"),
            (["server", "--max-message-bytes", "10"], [:], "max message bytes 10 is out of range"),
            (["server", "--stats-interval", "-1"], [:], "--stats-interval -1.0 is out of range"),
            (["agents", "--network", "127.0.0.1:99999"], [:], "port 99999 is out of range"),
            (["agents", "--network", ":3737"], [:], "host is empty"),
            (["agents", "--timeout", "-1"], [:], "--timeout -1.0 is out of range"),
            (["agent", "--network", "127.0.0.1:3737", "--endpoint", "127.0.0.1:65536"], [:], "port 65536 is out of range"),
        ]
        for (arguments, environment, message) in cases {
            let child = try startHulynet(arguments, environment: environment)
            let what = "hulynet \(arguments.joined(separator: " ")) \(environment)"
            guard let status = child.waitForExit(timeoutMs: scaled(10_000)) else {
                XCTFail("\(what): still running")
                continue
            }
            XCTAssertNotEqual(status, .exited(0), what)
            let said = child.output(.stderr) + child.output(.stdout)
            XCTAssertTrue(said.contains(message), "\(what): expected '\(message)', got: \(said)")
            XCTAssertFalse(said.contains("listening on"), "\(what) bound a port")
        }
    }
}
