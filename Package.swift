// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SwiftLVS",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LVSCore", targets: ["LVSCore"]),
    ],
    targets: [
        // The IPVS brain: schedulers, connection table, persistence, statistics, the ipvsadm rule model.
        .target(name: "LVSCore", dependencies: ["CLVSIntrinsics"]),
        // Header-only C: the cache prefetch hint the packet path uses (no system calls).
        .target(name: "CLVSIntrinsics"),

        // Targets of later stages (see DESIGN.md); each holds only its namespace until its issue lands.
        .target(name: "LVSPacket", dependencies: ["LVSCore"]),
        .target(name: "KeepalivedConfig", dependencies: ["LVSCore"]),
        .target(name: "ControlAPI", dependencies: ["LVSCore"]),

        .executableTarget(
            name: "LVSCoreBenchmark",
            dependencies: ["LVSCore", "CMallocCounter"],
            path: "Benchmarks/LVSCoreBenchmark"
        ),
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),

        .testTarget(name: "ControlAPITests", dependencies: ["ControlAPI", "LVSCore"]),
        .testTarget(
            name: "LVSCoreTests",
            dependencies: ["LVSCore"],
            exclude: ["Oracle"]
        ),
    ]
)
