import CZeroMQ

/// A CURVE key pair (Curve25519, as ZeroMQ's CURVE mechanism uses), each key in Z85 text
/// (40 characters).
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    /// A fresh pair from libzmq (libsodium's random source).
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: Curve.text(publicKey), secretKey: Curve.text(secretKey))
    }

    /// The pair of a secret key (its public key derived from it).
    public init(secretKey: String) throws(CurveKeyError) {
        guard Curve.isKey(secretKey) else { throw CurveKeyError("not a Z85 CURVE key (40 characters of Z85)") }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else { throw CurveKeyError("cannot derive the public key") }
        self.publicKey = Curve.text(publicKey)
        self.secretKey = secretKey
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

public struct CurveKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum Curve {
    /// Whether this libzmq was built with CURVE (Debian's is, with libsodium).
    public static var isAvailable: Bool { zmq_has("curve") == 1 }

    /// Whether `text` is a Z85 CURVE key: 40 Z85 characters that decode to 32 bytes.
    public static func isKey(_ text: String) -> Bool {
        guard text.utf8.count == 40 else { return false }
        var bytes = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&bytes, text) != nil
    }

    /// A key's 32 bytes as Z85 (what a ZAP request carries is binary).
    public static func z85(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&text, bytes, 32) != nil else { return nil }
        return Curve.text(text)
    }

    /// A short, stable name of a public key for logs: never the key itself in full.
    public static func fingerprint(_ publicKey: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for byte in publicKey.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension ZMQSocket {
    /// Makes this (ROUTER) socket a CURVE server with `keys`; `zapDomain` names the domain the
    /// ZAP handler of the socket's context is asked about each connecting client.
    public func makeCurveServer(_ keys: CurveKeyPair, zapDomain: String?) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, 1)
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
        if let zapDomain { try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(zapDomain.utf8)) }
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: Array(serverKey.utf8))
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.utf8))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
    }
}

/// A CURVE client's keys and the public key of the server it connects to.
public struct CurveClientKeys: Sendable, Equatable {
    public var keys: CurveKeyPair
    public var serverKey: String

    public init(keys: CurveKeyPair, serverKey: String) {
        self.keys = keys
        self.serverKey = serverKey
    }
}
