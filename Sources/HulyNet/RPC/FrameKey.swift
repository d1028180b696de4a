/// A frame's bytes as a dictionary key (routing identities, request ids). `[UInt8]` hashes byte
/// by byte; this hashes the whole buffer at once, which matters on the coordinator's hot path,
/// where each forwarded request looks up several such keys.
struct FrameKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (lhs: FrameKey, rhs: FrameKey) -> Bool { lhs.bytes == rhs.bytes }
}
