// swift-tools-version:6.2
import PackageDescription

// hulynet-otel: the coordinator and an agent with their spans exported over OTLP (swift-otel).
// A package of its own so that the library, the CLI and every build of the main package stay
// free of swift-otel's dependencies (SwiftNIO, AsyncHTTPClient, SwiftProtobuf), which take
// minutes to build; scripts/otel-test.sh builds it and tests the export once per CI run.
let package = Package(
    name: "hulynet-otel",
    products: [
        .executable(name: "hulynet-otel", targets: ["hulynet-otel"]),
    ],
    dependencies: [
        // Named: the identity of a path dependency is its directory name, which depends on the clone.
        .package(name: "hulynet", path: ".."),
        // OTLP over HTTP only: the gRPC exporter's dependencies are not built.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        .executableTarget(
            name: "hulynet-otel",
            dependencies: [
                .product(name: "HulyNet", package: "hulynet"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
