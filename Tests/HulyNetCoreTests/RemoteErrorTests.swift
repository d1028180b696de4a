import XCTest
@testable import HulyNetCore

// Unit tests of the errors that cross the wire (Sources/HulyNetCore/RemoteError.swift): the
// responseError payload with hulynet's "code", and the one rule that reads the reference's texts
// (a TypeScript peer sends no code).

final class RemoteErrorTests: XCTestCase {

    private func decode(_ text: String) -> RemoteError { RemoteError(payload: Array(text.utf8)) }

    private func payloadObject(_ error: RemoteError) throws -> JSONValue { try JSONValue.parse(error.payload) }

    // MARK: The payload

    func testPayloadCarriesMessageEmptyStackAndCode() throws {
        let error = RemoteError("no answer within 50 ms", code: .timeout)
        XCTAssertEqual(try payloadObject(error),
                       ["message": "no answer within 50 ms", "stack": "", "code": "timeout"])
    }

    func testEveryCodeSurvivesTheRoundTrip() {
        for code in NetworkErrorCode.allCases {
            let error = RemoteError("failure \(code.rawValue)", code: code)
            XCTAssertEqual(RemoteError(payload: error.payload), error, "code \(code.rawValue)")
        }
    }

    /// A container's own error travels as "app" and comes back with no network code, even when
    /// its text reads like one of the network's failures.
    func testContainerErrorTravelsAsAppAndComesBackWithoutCode() throws {
        let error = RemoteError("Container abc not found")
        XCTAssertNil(error.code)
        XCTAssertEqual(try payloadObject(error)["code"], "app")
        let back = RemoteError(payload: error.payload)
        XCTAssertEqual(back.message, "Container abc not found")
        XCTAssertNil(back.code, "an \"app\" error is the container's: the text rule must not turn it into a network failure")
    }

    // MARK: A peer without codes (the reference)

    func testPayloadWithoutCodeIsReadByTheReferencesTexts() {
        XCTAssertEqual(decode(#"{"message":"No suitable agents found for container x","stack":"s"}"#).code, .noAgent)
        XCTAssertEqual(decode(#"{"message":"Container abc not found","stack":""}"#).code, .containerNotFound)
        XCTAssertEqual(decode(#"{"message":"Agent abc not found","stack":""}"#).code, .agentGone)
        XCTAssertNil(decode(#"{"message":"Container foo bar not found","stack":""}"#).code,
                     "more than one word between prefix and suffix is a container's own text")
        XCTAssertNil(decode(#"{"message":"operation failed","stack":""}"#).code)
        XCTAssertEqual(decode(#"{"message":"Agent abc not found"}"#).message, "Agent abc not found")
    }

    func testTextRule() {
        XCTAssertEqual(NetworkErrorCode(text: "No suitable agents found for container kind-1"), .noAgent)
        XCTAssertEqual(NetworkErrorCode(text: "Container 0b1c-22 not found"), .containerNotFound)
        XCTAssertEqual(NetworkErrorCode(text: "Agent a-1 not found"), .agentGone)
        XCTAssertNil(NetworkErrorCode(text: "Container  not found"), "an empty name is no name")
        XCTAssertNil(NetworkErrorCode(text: "Container not found"))
        XCTAssertNil(NetworkErrorCode(text: "Container foo bar not found"))
        XCTAssertNil(NetworkErrorCode(text: "The Container abc not found"))
        XCTAssertNil(NetworkErrorCode(text: "Container abc not found!"))
        XCTAssertNil(NetworkErrorCode(text: ""))
    }

    /// A code this version does not know is the container's business (nil), and the text rule
    /// is not tried: the peer said what it meant.
    func testUnknownCodeComesBackAsNoCode() {
        let error = decode(#"{"message":"Container abc not found","stack":"","code":"brand_new"}"#)
        XCTAssertEqual(error.message, "Container abc not found")
        XCTAssertNil(error.code)
    }

    func testPayloadThatIsNotTheUsualShapeBecomesTheMessageAsItIs() {
        XCTAssertEqual(decode("it broke"), RemoteError("it broke"))
        XCTAssertEqual(decode(#"{"error":"x"}"#), RemoteError(#"{"error":"x"}"#))
        XCTAssertEqual(decode(#"{"message":5}"#), RemoteError(#"{"message":5}"#))
        XCTAssertEqual(decode(#""Container abc not found""#).code, nil, "the text rule reads only a message field")
        XCTAssertEqual(decode(""), RemoteError(""))
    }

    // MARK: Codes and local errors

    func testOnlyNotFoundAndAgentGoneMeanMoved() {
        let moved = NetworkErrorCode.allCases.filter(\.meansMoved)
        XCTAssertEqual(Set(moved), [.containerNotFound, .agentGone])
    }

    func testAnyErrorBecomesARemoteErrorKeepingOneThatIsAlready() {
        struct Local: Error, CustomStringConvertible { var description: String { "local trouble" } }
        XCTAssertEqual(RemoteError(RemoteError("x", code: .limit) as any Error), RemoteError("x", code: .limit))
        XCTAssertEqual(RemoteError(Local() as any Error), RemoteError("local trouble"))
    }
}
