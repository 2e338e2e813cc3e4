import DSG
import Foundation

/// A PNG grid of Fashion-MNIST-normalised images, mapped back to pixel brightness.
func writeGrid(_ images: Tensor, to path: String) throws {
    let g = PNG.grid(images, columns: Int(Double(images.shape[0]).squareRoot().rounded(.up)), zoom: 3) {
        $0 * FashionMNIST.standardDeviation + FashionMNIST.mean
    }
    try PNG.encode(pixels: g.pixels, width: g.width, height: g.height, channels: g.channels).write(
        to: URL(fileURLWithPath: path), options: .atomic)
}

/// Writes `value` as pretty-printed JSON with sorted keys, atomically.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
}
