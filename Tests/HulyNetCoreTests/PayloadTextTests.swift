import HulyNetCore
import XCTest

final class PayloadTextCoreTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testRequestsAreComposedAroundTheDataBytes() {
        let data: JSONText = #"{"b":1.10,"a":1e2}"#
        XCTAssertEqual(String(decoding: PayloadText.containerRequest(target: "t\"1", operation: "op", data: data), as: UTF8.self),
                       #"["cs",["t\"1","op",{"b":1.10,"a":1e2}]]"#)
        XCTAssertEqual(String(decoding: PayloadText.directRequest(operation: "op", data: data), as: UTF8.self),
                       #"["op",{"b":1.10,"a":1e2}]"#)
        XCTAssertEqual(PayloadText.routedEvent(PayloadText.routedEvent(container: "u", data: data))?.data, data)
        let parts = PayloadText.containerRequest(in: bytes(#"[ "t" , "op" , [1 ,2] ]"#), at: 0..<23)
        XCTAssertEqual(parts?.target, "t")
        XCTAssertEqual(parts?.data.string, "[1 ,2]")
    }

    func testForwardedRequestIsReadInOnePassAndValidated() throws {
        let text = bytes(#"["cs",["agent",["target","op",{"z":1,"a":[1.10]}],["client","r-1"]]]"#)
        let (method, params) = try JSONScanner.methodAndParams(text)
        XCTAssertEqual(method, "cs")
        let forwarded = try XCTUnwrap(ForwardedRequest(in: text, at: params))
        XCTAssertEqual(forwarded.agentId, "agent")
        XCTAssertEqual(forwarded.target, "target")
        XCTAssertEqual(forwarded.operation, "op")
        XCTAssertEqual(forwarded.data.string, #"{"z":1,"a":[1.10]}"#)
        let origin = try XCTUnwrap(forwarded.extra.flatMap { RequestOrigin(in: text, at: $0) })
        XCTAssertEqual(origin, RequestOrigin(client: "client", request: "r-1"))

        // The reference's coordinator: no origin, no data.
        let bare = bytes(#"["cs",["agent",["target","op"]]]"#)
        let bareForwarded = try XCTUnwrap(ForwardedRequest(in: bare, at: try JSONScanner.methodAndParams(bare).params))
        XCTAssertEqual(bareForwarded.data, .null)
        XCTAssertNil(bareForwarded.extra)

        // Invalid anywhere, the data included, or the wrong shape: refused.
        for bad in [#"["cs",["agent",["target","op",{"z":}]]]"#, #"["cs",["agent",["target","op",1]],2,3]"#,
                    #"["cs",["agent",["target",7,1]]]"#, #"["cs",["agent"]]"#, #"["cs",["agent",["t","op",1]] x]"#,
                    #"["cs",["agent",["t","op",1]]"#] {
            let text = bytes(bad)
            if let params = try? JSONScanner.methodAndParams(text).params {
                XCTAssertNil(ForwardedRequest(in: text, at: params), bad)
            }
        }
    }

    func testMethodAndParamsSplitsWithoutReadingParams() throws {
        XCTAssertEqual(try JSONScanner.methodAndParams(bytes(#" [ "al" , {} ] "#)).method, "al")
        let text = bytes(#"["m" , [1, 2] ]"#)
        let range = try JSONScanner.methodAndParams(text).params
        XCTAssertEqual(String(decoding: text[range], as: UTF8.self), "[1, 2]")
        XCTAssertTrue(try JSONScanner.methodAndParams(bytes(#"["m"]"#)).params.isEmpty)
        for bad in ["", "[", #"["m""#, #"[1, 2]"#, #"["m",]"#, #"["m" 1]"#, #"{"m":1}"#] {
            XCTAssertThrowsError(try JSONScanner.methodAndParams(bytes(bad)), bad)
        }
    }
}
