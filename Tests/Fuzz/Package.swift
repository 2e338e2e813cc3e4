// swift-tools-version: 6.0
// The fuzzers of the readers of untrusted files (ONNX, safetensors, IDX, PNG and JPEG), a package of their own so
// that libFuzzer's flags never reach swift-dsg's Package.swift. Build and run: Docs/TESTING.md, "Fuzzing".
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which is whatever the clone was called, so it is read here.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()
let dsg = Target.Dependency.product(name: "DSG", package: root.lastPathComponent)

let package = Package(
    name: "swift-dsg-fuzz",
    dependencies: [.package(path: root.path)],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(name: "FuzzONNX", dependencies: [dsg, "FuzzDriver"]),
        .executableTarget(name: "FuzzSafetensors", dependencies: [dsg, "FuzzDriver"]),
        .executableTarget(name: "FuzzIDX", dependencies: [dsg, "FuzzDriver"]),
        .executableTarget(name: "FuzzImages", dependencies: [dsg, "FuzzDriver"]),
    ]
)
