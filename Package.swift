// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SwiftLVS",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LVSCore", targets: ["LVSCore"]),
        .executable(name: "lvsd", targets: ["lvsd"]),
        .executable(name: "ipvsadm", targets: ["ipvsadm"]),
        .executable(name: "genhash", targets: ["genhash"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
    ],
    targets: [
        // The IPVS brain: schedulers, connection table, persistence, statistics, the ipvsadm rule model.
        .target(name: "LVSCore", dependencies: ["CLVSIntrinsics"]),
        // Header-only C: the cache prefetch hint the packet path uses (no system calls).
        .target(name: "CLVSIntrinsics"),
        // Header-only C: the Linux calls Swift's Glibc module leaves out (epoll, eventfd, accept4).
        .target(name: "CLinux"),

        // Wire formats and the three rewrites, pure.
        .target(name: "LVSPacket", dependencies: ["LVSCore"]),
        // The table as the engines and the control plane share it (a lock, the table's clocks).
        .target(name: "LVSState", dependencies: ["LVSCore", .product(name: "NIOCore", package: "swift-nio"),
                                                 .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // VRRPv2/v3: the codec, the instances and their router (pure), and the host that runs them on the wire.
        .target(name: "VRRP", dependencies: ["LVSCore", "LVSPacket", "LinuxNet", "CLinux",
                                             .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // Thin wrappers over Linux: rtnetlink, AF_PACKET, sysctl, running nft.
        .target(name: "LinuxNet", dependencies: ["CLinux", "LVSCore"]),
        // Connection sync: the IPVS sync protocol's codec (pure) and the master and backup daemons on the wire.
        .target(name: "LVSSync", dependencies: ["LVSCore", "LVSState", "LinuxNet", "CLinux", .product(name: "Logging", package: "swift-log"),
                                                .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        .target(name: "KeepalivedConfig", dependencies: ["LVSCore"]),
        .target(name: "ControlAPI", dependencies: ["LVSCore"]),
        .target(
            name: "HealthCheck",
            dependencies: ["LVSCore", "CLinux", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "LVSProxyEngine",
            dependencies: ["LVSCore", "LVSState", "LinuxNet", "CLinux", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "LVSPacketEngine",
            dependencies: ["LVSCore", "LVSPacket", "LVSState", "LinuxNet", "CLinux", .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        // lvsd --http: /metrics (Prometheus text), /api/v1 (JSON) and the dashboard, on NIOHTTP1 (part of swift-nio).
        .target(
            name: "Observability",
            dependencies: ["LVSCore", "ControlAPI", "HealthCheck", "VRRP", "LVSSync", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Director",
            dependencies: ["LVSCore", "LVSState", "ControlAPI", "LVSProxyEngine", "LVSPacket", "LVSPacketEngine", "KeepalivedConfig", "HealthCheck", "VRRP", "LVSSync",
                           "Observability",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(name: "lvsd", dependencies: ["Director", "LVSProxyEngine", "LVSPacketEngine", "LinuxNet", "KeepalivedConfig", "Observability", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "ipvsadm", dependencies: ["ControlAPI"]),
        .executableTarget(name: "genhash", dependencies: ["HealthCheck", "LVSCore", .product(name: "NIOCore", package: "swift-nio"),
                                                          .product(name: "NIOPosix", package: "swift-nio")]),

        .executableTarget(
            name: "LVSCoreBenchmark",
            dependencies: ["LVSCore", "CMallocCounter"],
            path: "Benchmarks/LVSCoreBenchmark"
        ),
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),
        .executableTarget(name: "HealthCheckBenchmark", dependencies: ["HealthCheck", "LVSCore", .product(name: "NIOPosix", package: "swift-nio"),
                                                                       .product(name: "Logging", package: "swift-log")],
                          path: "Benchmarks/HealthCheckBenchmark"),
        // libFuzzer over LVSPacket, VRRP's receive path, the sync decoder and the fwmark path (scripts/fuzz-packets); without -DFUZZING a corpus regression runner.
        .executableTarget(name: "PacketFuzzer", dependencies: ["LVSPacket", "LVSPacketEngine", "VRRP", "LVSSync"], path: "Fuzz/PacketFuzzer"),
        .executableTarget(name: "SyncBenchmark", dependencies: ["LVSSync", "LVSState", "LVSCore", .product(name: "NIOPosix", package: "swift-nio"),
                                                                .product(name: "Logging", package: "swift-log")],
                          path: "Benchmarks/SyncBenchmark"),
        .executableTarget(name: "MetricsBenchmark", dependencies: ["Observability", "ControlAPI", "LVSState", "LVSCore",
                                                                   .product(name: "NIOPosix", package: "swift-nio")],
                          path: "Benchmarks/MetricsBenchmark"),
        .executableTarget(name: "ConfigReloadBenchmark", dependencies: ["KeepalivedConfig", "LVSCore"], path: "Benchmarks/ConfigReloadBenchmark"),

        .testTarget(name: "ControlAPITests", dependencies: ["ControlAPI", "LVSCore"]),
        .testTarget(name: "DirectorTests", dependencies: ["Director", "ControlAPI", "LVSCore", "LVSProxyEngine", "KeepalivedConfig", "VRRP", "Observability"]),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability", "LVSCore", "HealthCheck", "VRRP", "LVSSync",
                                                               .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "HealthCheckTests", dependencies: ["HealthCheck", "LVSCore", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "VRRPTests", dependencies: ["VRRP", "LVSCore"]),
        .testTarget(name: "LVSSyncTests", dependencies: ["LVSSync", "LVSCore", "ControlAPI"], exclude: ["Oracle"]),
        .testTarget(name: "LinuxNetTests", dependencies: ["LinuxNet", "LVSCore"]),
        .testTarget(name: "LVSPacketEngineTests", dependencies: ["LVSPacketEngine", "LVSPacket", "LVSCore", "LVSState", "LinuxNet", "ControlAPI",
                                                               .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "LVSPacketTests", dependencies: ["LVSPacket", "LVSCore"], exclude: ["Corpus"]),
        .testTarget(name: "KeepalivedConfigTests", dependencies: ["KeepalivedConfig", "LVSCore"], exclude: ["Corpus"]),
        .testTarget(
            name: "LVSCoreTests",
            dependencies: ["LVSCore"],
            exclude: ["Oracle"]
        ),
    ]
)
