internal import CZlib
import Foundation

/// PNG files of 8-bit images, compressed with zlib (PNG's own format: zlib-wrapped deflate in IDAT chunks,
/// CRC-32 per chunk, also from zlib).
public enum PNG {
    /// Grey (1 channel) or RGB (3 channels) pixels, row-major, `height * width * channels` bytes.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) -> Data {
        precondition(channels == 1 || channels == 3, "PNG.encode: 1 (grey) or 3 (RGB) channels.")
        precondition(pixels.count == width * height * channels, "PNG.encode: pixel count does not match the size.")
        // Every scanline starts with its filter type; 0 means unfiltered.
        var raw = [UInt8]()
        raw.reserveCapacity(height * (width * channels + 1))
        for y in 0..<height {
            raw.append(0)
            raw += pixels[(y * width * channels)..<((y + 1) * width * channels)]
        }
        var compressedSize = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
        let status = compress2(&compressed, &compressedSize, raw, uLong(raw.count), Z_BEST_COMPRESSION)
        precondition(status == Z_OK, "zlib compress2 failed with status \(status)")
        compressed.removeLast(compressed.count - Int(compressedSize))

        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0]  // bit depth, colour type, compression, filter, interlace
        appendChunk("IHDR", header, to: &png)
        appendChunk("IDAT", compressed, to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    /// A grid of `[N, C, H, W]` images (C = 1 or 3), `columns` wide with a `border`-pixel gap, each image
    /// enlarged `zoom` times (nearest neighbour) and each value mapped to a byte by `toUnit` (which should
    /// return 0...1) and clamped.
    public static func grid(
        _ images: Tensor, columns: Int, border: Int = 2, zoom: Int = 1, toUnit: (Float) -> Float
    ) -> (pixels: [UInt8], width: Int, height: Int, channels: Int) {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let (zh, zw) = (h * zoom, w * zoom)
        let cols = max(1, min(columns, n)), rows = (n + cols - 1) / cols
        let width = cols * zw + (cols + 1) * border, height = rows * zh + (rows + 1) * border
        var pixels = [UInt8](repeating: 255, count: width * height * c)
        images.withUnsafeBufferPointer { x in
            for i in 0..<n {
                let top = border + (i / cols) * (zh + border), left = border + (i % cols) * (zw + border)
                for y in 0..<zh {
                    for xx in 0..<zw {
                        for ch in 0..<c {
                            let v = toUnit(x[((i * c + ch) * h + y / zoom) * w + xx / zoom])
                            pixels[((top + y) * width + left + xx) * c + ch] = UInt8(
                                (min(max(v, 0), 1) * 255).rounded())
                        }
                    }
                }
            }
        }
        return (pixels, width, height, c)
    }

    private static func bigEndian(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> UInt32($0)) & 0xff) } }

    private static func appendChunk(_ type: String, _ body: [UInt8], to png: inout Data) {
        let typeBytes = Array(type.utf8)
        png.append(contentsOf: bigEndian(UInt32(body.count)))
        png.append(contentsOf: typeBytes)
        png.append(contentsOf: body)
        let crc = (typeBytes + body).withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        png.append(contentsOf: bigEndian(UInt32(crc)))
    }
}
