// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-dsg",
    products: [
        .library(name: "DSG", targets: ["DSG"]),
        .executable(name: "dsg", targets: ["dsg"]),
        .executable(name: "dsg-bench", targets: ["dsg-bench"]),
        // Generation spread over MPI ranks; the only product that needs Open MPI (Docs/ARCHITECTURE.md).
        .executable(name: "dsg-mpi", targets: ["dsg-mpi"]),
        .library(name: "DSGMPI", targets: ["DSGMPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // ONNX files are protobuf; the generated code (Sources/DSGONNX/onnx.pb.swift) is committed.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // MARK: - System library
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // PNG and JPEG decoding for labelled image folders (`dsg evaluate --images`).
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        // Open MPI, for dsg-mpi and DSGMPI only: nothing else depends on it, so DSG and dsg build without it.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // MARK: - Libraries (each depends only on the ones above it)
        // The few loops that need vector instructions past baseline x86-64, in C with one variant per instruction
        // set (Sources/CDSGKernels/include/CDSGKernels.h); only DSGKernels calls them.
        .target(name: "CDSGKernels"),
        .target(name: "DSGKernels", dependencies: ["COpenBLAS", "CDSGKernels"]),
        .target(name: "DSGCore", dependencies: ["DSGKernels", "CZlib", "CPNG", "CTurboJPEG"]),
        // The embedded default model (Docs/RESULTS.md) ships as a resource of the library users import.
        // DSG imports DSGKernels itself: the eigensolver (correlation term, diversity metrics) and the Double
        // reductions of the per-sample and batch statistics.
        // ONNX import: the only target that sees SwiftProtobuf, so DSGKernels and DSGCore stay free of it.
        .target(
            name: "DSGONNX", dependencies: ["DSGCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Proto"]),
        .target(
            name: "DSG", dependencies: ["DSGCore", "DSGKernels", "DSGONNX"],
            resources: [.copy("Resources/resnet20-fashion-mnist.safetensors")]),

        // MARK: - Executables
        // The command-line interface as a library, so the `dsg` executable and the tests share it.
        .target(
            name: "DSGCommandLine",
            dependencies: ["DSG", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "dsg", dependencies: ["DSGCommandLine"]),
        // MPI wrapped once in Swift (Communicator) and what runs over it (DistributedGeneration).
        .target(name: "DSGMPI", dependencies: ["DSG", "DSGKernels", "CMPI"]),
        .executableTarget(
            name: "dsg-mpi",
            dependencies: [
                "DSGCommandLine", "DSGMPI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "dsg-bench", dependencies: ["DSG", "DSGCore", "DSGKernels", "CMallocCounter"],
            path: "Benchmarks/dsg-bench"),
        // Counts heap allocations inside dsg-bench only (it replaces malloc in that executable).
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),

        // MARK: - Test support and tests
        .target(name: "DSGTestSupport", dependencies: ["DSGCore"], path: "Tests/DSGTestSupport"),
        .testTarget(name: "DSGKernelsTests", dependencies: ["DSGKernels", "DSGTestSupport"]),
        .testTarget(
            name: "DSGTests", dependencies: ["DSG", "DSGONNX", "DSGTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "dsgTests",
            dependencies: [
                "DSGCommandLine", "DSG", "DSGTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Runs dsg-mpi and mpi-probe (every collective of Communicator once) under mpirun, and dsg for the
        // single-process runs they must agree with, so it needs the three executables built beside it.
        .executableTarget(name: "mpi-probe", dependencies: ["DSGMPI"], path: "Tests/MPIProbe"),
        .testTarget(
            name: "DSGMPITests", dependencies: ["DSGMPI", "DSG", "DSGTestSupport", "dsg-mpi", "mpi-probe", "dsg"]),
        .testTarget(
            name: "DSGCoreTests",
            dependencies: ["DSGCore", "DSGTestSupport"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
