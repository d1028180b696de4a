// swift-tools-version:6.0
import PackageDescription

/// The package's root directory, for linker flags that name files in it.
let packageRoot: String = {
    var path = #filePath
    while let last = path.last, last != "/" { path.removeLast() }
    return path
}()

let package = Package(
    name: "hulynet",
    products: [
        .library(name: "HulyNet", targets: ["HulyNet"]),
        .library(name: "HulyNetCore", targets: ["HulyNetCore"]),
        .executable(name: "hulynet", targets: ["hulynet"]),
        // libhulynet.so: the C API of include/hulynet.h. SwiftPM names the file libHulyNetC.so;
        // its SONAME is libhulynet.so.0 and CMake installs it under that name.
        .library(name: "HulyNetC", type: .dynamic, targets: ["HulyNetC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.1.0"),
        // Metrics: recorded through swift-metrics' handles, rendered in Prometheus text by
        // swift-prometheus (which needs only swift-metrics and swift-atomics, no SwiftNIO).
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
    ],
    targets: [
        // libzmq from Debian's libzmq3-dev, found through pkg-config.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // Pure protocol logic: JSON, the model, frames, the coordinator's state machine. No I/O.
        // It records its metrics through swift-metrics' handles (CoreMetrics: protocols, no I/O).
        .target(name: "HulyNetCore", dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")]),
        // Where threads meet, with no I/O: the lock, the monotonic clock, a resume-once slot.
        .target(name: "HulyNetSync"),
        // A small safe Swift layer over the ZeroMQ sockets hulynet needs.
        .target(name: "HulyNetZMQ", dependencies: ["CZeroMQ", "HulyNetSync"]),
        // Child processes watched from outside (output files, /proc memory and CPU, signals,
        // deadlines): the multi-process tests and the bench's coordinator process.
        .target(name: "HulyNetProcess"),
        // The I/O shell: RPC endpoints, network server, agents, clients.
        .target(
            name: "HulyNet",
            dependencies: [
                "HulyNetCore", "HulyNetSync", "HulyNetZMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        // include/hulynet.h as a module (Sources/CHulyNet/include links to it).
        .target(name: "CHulyNet"),
        // Only the @_cdecl exports of include/hulynet.h: C arguments and callbacks to the Swift core
        // and back. The Swift runtime is linked in and hidden; only hulynet_* symbols are exported.
        .target(
            name: "HulyNetC",
            dependencies: [
                "CHulyNet", "HulyNet", "HulyNetCore", "HulyNetSync", "HulyNetZMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["exports.map"],
            swiftSettings: [.unsafeFlags(["-static-stdlib"])],
            linkerSettings: [
                .unsafeFlags([
                    "-static-stdlib", "-use-ld=lld",
                    "-Xlinker", "-soname=libhulynet.so.0",
                    "-Xlinker", "--version-script=\(packageRoot)Sources/HulyNetC/exports.map",
                ]),
            ]
        ),
        .executableTarget(
            name: "hulynet",
            dependencies: [
                "HulyNet", "HulyNetSync", "HulyNetZMQ", "HulyNetProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // One test target per module (HulyNetC is tested from C: tests/c through CMake).
        .testTarget(name: "HulyNetCoreTests", dependencies: ["HulyNetCore"]),
        .testTarget(name: "HulyNetSyncTests", dependencies: ["HulyNetSync"]),
        .testTarget(name: "HulyNetZMQTests", dependencies: ["HulyNetZMQ", "HulyNetSync"]),
        .testTarget(name: "HulyNetTests", dependencies: [
            "HulyNet", "HulyNetSync", "HulyNetZMQ",
            .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
        ]),
        // Real `hulynet` processes (built beside the test bundle) under hostile peers and limits.
        .testTarget(name: "HulyNetProcessTests", dependencies: [
            "CZeroMQ", "HulyNet", "HulyNetCore", "HulyNetSync", "HulyNetZMQ", "HulyNetProcess",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
