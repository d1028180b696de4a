// swift-tools-version:6.0
// A package outside hulynet that depends on it as a user's would, by path, and uses HulyNet.
// scripts/swiftpm-consumer-test.sh copies this directory out of the checkout and points the path
// at the checkout; built in place, "../.." is the checkout.
import PackageDescription

let package = Package(
    name: "HulyNetConsumer",
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "HulyNetConsumer",
            dependencies: [
                .product(name: "HulyNet", package: "hulynet"),
                .product(name: "HulyNetCore", package: "hulynet"),
            ]
        ),
    ]
)
