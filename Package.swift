// swift-tools-version: 6.1
import PackageDescription

/// Every Swift target builds in Swift 6 language mode with complete strict concurrency checking.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The inference kernels are optimised in debug builds too: tests, `swift run fleetwatch demo`
/// and the simulator run real inference, which unoptimised SIMD code makes ~100x slower.
/// (An application package: unsafe flags only matter to packages used as dependencies.)
let optimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

/// EdgeKernelsAVX2 is EdgeKernels' sources (relative symlinks) built for AVX2 + FMA; EdgeRuntime
/// picks one of the two at run time (CCPUFeatures), so the rest of the build stays baseline.
/// On other architectures it is the same code without flags, and never picked.
#if arch(x86_64)
let avx2Kernels: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell", "-D", "FW_FMA"])]
#else
let avx2Kernels: [SwiftSetting] = []
#endif

let package = Package(
    name: "fleetwatch",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fleetwatch", targets: ["fleetwatch"]),
        .executable(name: "fleet-agent", targets: ["fleet-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // MARK: - C shims (module maps only; prefixed inline wrappers where Swift cannot import macros)
        .systemLibrary(
            name: "CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CMosquitto", pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(
            name: "CNCurses", pkgConfig: "ncursesw",
            providers: [.apt(["libncurses-dev"])]),

        // MARK: - Pure core: no I/O, no clock, no C
        .target(name: "FleetCore", swiftSettings: strict),

        /// Rules: alerts.yaml parsing, the alert state machine, templates. Pure (Yams parses text).
        .target(name: "FleetRules", dependencies: ["FleetCore", "Yams"], swiftSettings: strict),

        // MARK: - Adapters: one C library or protocol each
        .target(name: "SQLiteKit", dependencies: ["CSQLite"], swiftSettings: strict),
        .target(name: "FleetStore", dependencies: ["FleetCore", "SQLiteKit", "CSQLite"], swiftSettings: strict),
        /// Buffered socket I/O under libmosquitto (docs/architecture.md, "MQTT I/O").
        .target(name: "CBufferedSocketIO"),
        .target(name: "FleetMQTT", dependencies: ["CMosquitto", "CBufferedSocketIO"], swiftSettings: strict),
        .target(
            name: "FleetIngest",
            dependencies: [
                "FleetCore", "FleetStore", "FleetMQTT", "FleetRules", "SQLiteKit",
                .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),

        .target(name: "FleetTUI", dependencies: ["FleetCore", "FleetStore", "CNCurses"], swiftSettings: strict),

        // MARK: - Edge: what runs on a device (no ncurses)
        /// The hot inner loops, twice: baseline, and AVX2 + FMA (docs/edge-runtime.md, "Runtime CPU dispatch").
        .target(name: "CCPUFeatures"),
        .target(name: "EdgeKernels", swiftSettings: strict + optimisedInDebug),
        .target(name: "EdgeKernelsAVX2", swiftSettings: strict + optimisedInDebug + avx2Kernels),
        .target(
            name: "EdgeRuntime",
            dependencies: [
                "FleetCore",
                "EdgeKernels",
                "EdgeKernelsAVX2",
                "CCPUFeatures",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict + optimisedInDebug),
        .target(
            name: "FleetAgent",
            dependencies: ["FleetCore", "EdgeRuntime", "FleetMQTT", "SQLiteKit"],
            swiftSettings: strict),

        /// The fleet simulator: many devices in one process, running real inference.
        .target(
            name: "FleetSim",
            dependencies: ["FleetCore", "EdgeRuntime", "FleetAgent", "FleetMQTT"],
            swiftSettings: strict),

        // MARK: - Executables: argument parsing and wiring only
        .executableTarget(
            name: "fleetwatch",
            dependencies: [
                "FleetCore",
                "FleetStore",
                "FleetIngest",
                "FleetMQTT",
                "FleetTUI",
                "FleetRules",
                "FleetSim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict,
            // jemalloc as the process's malloc: the ingester allocates each message on the
            // network thread and frees it on the writer, a pattern glibc's arenas serve
            // poorly (docs/benchmarks.md, session 10: ~20% less CPU per message catching up).
            linkerSettings: [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]),
        .executableTarget(
            name: "fleet-agent",
            dependencies: [
                "FleetCore",
                "EdgeRuntime",
                "FleetAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "fleetwatch-bench",
            dependencies: ["FleetCore", "FleetStore", "EdgeRuntime", "SQLiteKit", "FleetIngest", "FleetMQTT", "FleetSim", "FleetRules"],
            swiftSettings: strict),

        // MARK: - Tests
        .testTarget(
            name: "FleetCoreTests", dependencies: ["FleetCore"],
            resources: [],
            swiftSettings: strict),
        .testTarget(
            name: "FleetStoreTests", dependencies: ["FleetStore", "FleetCore", "SQLiteKit"],
            swiftSettings: strict),
        .testTarget(
            name: "IngestTests",
            dependencies: ["FleetIngest", "FleetMQTT", "FleetStore", "FleetCore", "SQLiteKit", "FleetRules", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .testTarget(
            name: "FleetRulesTests", dependencies: ["FleetRules", "FleetCore"],
            swiftSettings: strict),
        .testTarget(
            name: "FleetTUITests", dependencies: ["FleetTUI", "FleetStore", "FleetCore"],
            swiftSettings: strict),
        .testTarget(
            name: "FleetAgentTests",
            dependencies: ["FleetAgent", "FleetMQTT", "FleetCore", "EdgeRuntime", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .testTarget(
            name: "EdgeRuntimeTests", dependencies: ["EdgeRuntime"],
            swiftSettings: strict),
        .testTarget(
            name: "FleetSimTests", dependencies: ["FleetSim", "FleetAgent", "FleetCore", "EdgeRuntime"],
            swiftSettings: strict),
        .testTarget(
            name: "CLITests", dependencies: ["FleetCore", "SQLiteKit"],
            swiftSettings: strict),
    ]
)
