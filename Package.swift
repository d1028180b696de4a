// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "hulynet",
    products: [
        .library(name: "HulyNet", targets: ["HulyNet"]),
        .library(name: "HulyNetCore", targets: ["HulyNetCore"]),
        .executable(name: "hulynet", targets: ["hulynet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
    ],
    targets: [
        // libzmq from Debian's libzmq3-dev, found through pkg-config.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // Pure protocol logic: JSON, the model, frames, the coordinator's state machine. No I/O.
        .target(name: "HulyNetCore"),
        // A small safe Swift layer over the ZeroMQ sockets hulynet needs.
        .target(name: "HulyNetZMQ", dependencies: ["CZeroMQ"]),
        // The I/O shell: RPC endpoints, network server, agents, clients.
        .target(
            name: "HulyNet",
            dependencies: [
                "HulyNetCore", "HulyNetZMQ",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "hulynet",
            dependencies: [
                "HulyNet", "HulyNetZMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "HulyNetCoreTests", dependencies: ["HulyNetCore"]),
        .testTarget(name: "HulyNetTests", dependencies: ["HulyNet", "HulyNetZMQ"]),
    ]
)
