// Fuzz targets for the frame decoders of RPCFrames.swift. An input is a frame set: frames
// separated by the byte 0xFF (which valid UTF-8 never holds, so every text frame can be written).

let frameSeparator: UInt8 = 0xFF

func splitFrames(_ data: UnsafeBufferPointer<UInt8>) -> [[UInt8]] {
    data.split(separator: frameSeparator, omittingEmptySubsequences: false).map { Array($0) }
}

/// A ROUTER routing identity as libzmq makes them (a zero byte, then four).
let routingIdentity: [UInt8] = [0x00, 0x6B, 0x8B, 0x45, 0x67]

/// client-frames: ClientMessage.decode never traps; what decodes encodes back to itself (also with
/// extra trailing frames); a rejection's detail is short printable ASCII.
func fuzzClientFrames(_ data: UnsafeBufferPointer<UInt8>) {
    let received = [routingIdentity] + splitFrames(data)
    switch ClientMessage.decode(received[1...]) {
    case .success(let message):
        let sent = [routingIdentity] + message.frames
        let again = ClientMessage.decode(sent[1...])
        check(again == .success(message), "\(message) encodes as \(message.frames), which decodes as \(again)")
        let padded = sent + [[0x31], []]
        check(ClientMessage.decode(padded[1...]) == again, "trailing frames changed \(message)")
    case .failure(let malformed):
        checkSafe(malformed)
    }
}

/// server-frames: the same for ServerMessage.decode, as a DEALER receives (no identity).
func fuzzServerFrames(_ data: UnsafeBufferPointer<UInt8>) {
    let received = splitFrames(data)
    let result = ServerMessage.decode(received[...])
    // The slice's indices must not matter.
    let shifted = [routingIdentity] + received
    check(ServerMessage.decode(shifted[1...]) == result, "a shifted slice decodes differently")
    switch result {
    case .success(let message):
        let again = ServerMessage.decode(message.frames[...])
        check(again == .success(message), "\(message) encodes as \(message.frames), which decodes as \(again)")
        let padded = message.frames + [[0x31], []]
        check(ServerMessage.decode(padded[...]) == again, "trailing frames changed \(message)")
    case .failure(let malformed):
        checkSafe(malformed)
    }
}

/// A rejection's detail may be logged as is: printable ASCII, bounded whatever the input.
func checkSafe(_ malformed: MalformedMessage) {
    let detail = malformed.detail.utf8
    check(detail.count <= 4 * MalformedMessage.maxEchoedBytes + 96, "detail of \(detail.count) bytes")
    check(detail.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "detail is not printable ASCII: \(malformed.detail.debugDescription)")
}
