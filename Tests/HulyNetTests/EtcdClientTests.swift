@testable import HulyNet
import HulyNetCore
import HulyNetZMQ
import XCTest

#if canImport(Glibc)
import Glibc
import HulyNetSync
#endif

/// The etcd client's own parts without etcd: endpoints, base64, HTTP answers (whole, chunked,
/// hostile), and a peer that never answers. The calls themselves run against a real etcd in
/// HulyNetProcessTests.HATests.
final class EtcdClientTests: XCTestCase {
    func testEndpoints() throws {
        let client = try EtcdClient(urls: ["http://127.0.0.1:2379/", " 10.0.0.2:23790 ", "etcd"], timeoutMs: 100)
        XCTAssertEqual(client.endpoints.map(\.text), ["127.0.0.1:2379", "10.0.0.2:23790", "etcd:2379"])
        XCTAssertThrowsError(try EtcdClient(urls: [], timeoutMs: 100))
        XCTAssertThrowsError(try EtcdClient(urls: ["https://127.0.0.1:2379"], timeoutMs: 100)) { error in
            XCTAssertTrue("\(error)".contains("https"))
        }
        XCTAssertThrowsError(try EtcdClient(urls: ["127.0.0.1:0"], timeoutMs: 100))
        XCTAssertThrowsError(try EtcdClient(urls: ["127.0.0.1:x"], timeoutMs: 100))
    }

    func testBase64RoundTrips() {
        for text in ["", "h", "hu", "hul", "hulynet/leader", "127.0.0.1:3737"] {
            XCTAssertEqual(Base64.decode(Base64.encode(Array(text.utf8))), Array(text.utf8), text)
        }
        XCTAssertEqual(Base64.encode(Array("hulynet/leader".utf8)), "aHVseW5ldC9sZWFkZXI=")
        XCTAssertNil(Base64.decode("a*b="))
        XCTAssertNil(Base64.decode("abcde"))
    }

    func testResponses() throws {
        let whole = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}".utf8)
        XCTAssertEqual(try EtcdClient.parseResponse(whole).0, 200)
        XCTAssertEqual(try EtcdClient.parseResponse(whole).1, Array("{\"a\":1}".utf8))
        let chunked = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n".utf8)
        XCTAssertEqual(try EtcdClient.parseResponse(chunked).1, Array("{\"a\":1}".utf8))
        for hostile in ["", "garbage", "HTTP/1.1 200 OK\r\n", "SMTP 200 OK\r\n\r\n{}",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nab"] {
            XCTAssertThrowsError(try EtcdClient.parseResponse(Array(hostile.utf8)), hostile.debugDescription)
        }
    }

    /// A peer that accepts and never answers: the call fails within its timeout, naming it.
    func testSilentPeerTimesOut() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        XCTAssertEqual(listen(fd, 4), 0)
        let client = try EtcdClient(urls: ["127.0.0.1:\(UInt16(bigEndian: address.sin_port))"], timeoutMs: 200)
        let started = MonotonicClock.nowMs()
        XCTAssertThrowsError(try client.read(key: "k")) { error in
            XCTAssertTrue("\(error)".contains("timed out"), "\(error)")
        }
        XCTAssertLessThan(MonotonicClock.nowMs() - started, 2000)
    }
}
