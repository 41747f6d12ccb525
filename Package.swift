// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "shadowd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "shadowd", targets: ["shadowd"]),
        .library(name: "ShadowCore", targets: ["ShadowCore"]),
        .library(name: "ShadowStore", targets: ["ShadowStore"]),
        .library(name: "ShadowProxy", targets: ["ShadowProxy"]),
        .library(name: "ShadowReport", targets: ["ShadowReport"]),
        .library(name: "ShadowFixtures", targets: ["ShadowFixtures"]),
        .library(name: "ShadowParquet", targets: ["ShadowParquet"]),
        .library(name: "ShadowTensor", targets: ["ShadowTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        // Tests only: an independent gRPC client and server to check the sidecar against.
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        // No I/O: configuration, routing, header rules, JSON, scorers, the bounded record hand-off.
        .target(
            name: "ShadowCore",
            dependencies: [
                .product(name: "Yams", package: "Yams")
            ]
        ),
        // The one SQLite setting Swift cannot make itself (sqlite3_config is variadic).
        .target(
            name: "CSQLiteTuning",
            linkerSettings: [.linkedLibrary("sqlite3")]
        ),
        // SQLite (system libsqlite3 through GRDB): schema, migrations, the batched writer, queries;
        // zlib (compress-nio) for `storage.bodies: compressed`.
        .target(
            name: "ShadowStore",
            dependencies: [
                "ShadowCore",
                "CSQLiteTuning",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The request path on SwiftNIO: listener, forwarders, shadow queues, admin listener, wiring.
        .target(
            name: "ShadowProxy",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                "ShadowTensor",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // A flat Parquet file writer (Thrift compact footer, PLAIN and dictionary values, RLE levels,
        // ZSTD pages through the system libzstd or GZIP through zlib, statistics): no Swift Parquet
        // library exists to depend on.
        .target(
            name: "ShadowParquet",
            dependencies: [
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Tensor protocols into the JSON value model the scorers read: KServe V2 and TF Serving
        // protobuf messages (Swift generated from Protos/ by scripts/protos/generate, committed),
        // and the V2 REST binary tensor extension. No I/O.
        .target(
            name: "ShadowTensor",
            dependencies: [
                "ShadowCore",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            exclude: ["Protos"]
        ),
        // `shadowd export`: pairs and coverage as Hive-partitioned Parquet or NDJSON.
        .target(
            name: "ShadowExport",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                "ShadowParquet",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // `shadowd replay`: backtests a candidate on recorded traffic through the proxy's client.
        .target(
            name: "ShadowReplay",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                "ShadowProxy",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The comparison report: one pass over the databases, statistics, verdict, renderers.
        .target(
            name: "ShadowReport",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // Deterministic toy model servers and a replay client: demo, tests, benchmarks.
        .target(
            name: "ShadowFixtures",
            dependencies: [
                "ShadowCore",
                "ShadowTensor",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "shadowd",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                "ShadowProxy",
                "ShadowReport",
                "ShadowFixtures",
                "ShadowExport",
                "ShadowParquet",
                "ShadowReplay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Benchmarks (run by hand in release; CI only builds them).
        .executableTarget(
            name: "shadowd-bench",
            dependencies: [
                "ShadowCore",
                "ShadowStore",
                "ShadowFixtures",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Fuzz harnesses: with `-D FUZZING -sanitize=fuzzer` a libFuzzer binary (scripts/fuzz/run);
        // without, a replayer of the seed corpus in Fixtures/fuzz (CI runs both).
        .executableTarget(
            name: "shadowd-fuzz",
            dependencies: ["ShadowCore"]
        ),
        .testTarget(
            name: "ShadowCoreTests",
            dependencies: ["ShadowCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "ShadowStoreTests",
            // The export reads what the store wrote: its tests share the store's record helpers.
            dependencies: [
                "ShadowCore", "ShadowStore", "ShadowExport", "ShadowFixtures", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ShadowTensorTests",
            dependencies: [
                "ShadowCore", "ShadowTensor", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"), .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ShadowParquetTests",
            dependencies: ["ShadowParquet", .product(name: "CompressNIO", package: "compress-nio"), .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "ShadowReportTests",
            dependencies: ["ShadowCore", "ShadowStore", "ShadowReport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "ShadowProxyTests",
            dependencies: [
                "ShadowCore", "ShadowStore", "ShadowProxy", "ShadowFixtures", "ShadowReplay", "ShadowTensor",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "ShadowdTests",
            // Depends on the executable so `swift test` builds the binary these tests spawn.
            dependencies: ["shadowd", "ShadowCore", "ShadowFixtures", .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ]
)

for target in package.targets where [.executable, .test, .regular].contains(target.type) {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
