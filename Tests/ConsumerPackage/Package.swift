// swift-tools-version: 6.0
// A separate package that depends on swift-dsg by path, as a user's package would; CI builds and runs it.
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which is whatever the clone was called, so it is read here.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "Consumer",
    dependencies: [.package(path: root.path)],
    targets: [
        .executableTarget(name: "Consumer", dependencies: [.product(name: "DSG", package: root.lastPathComponent)])
    ]
)
