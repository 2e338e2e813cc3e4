import DSGCore
import Foundation
import Testing

@Suite("PNG files")
struct PNGTests {
    /// Splits a PNG into (type, body, stored CRC) chunks after checking the signature.
    static func chunks(_ png: Data) -> [(String, [UInt8], UInt32)] {
        let bytes = [UInt8](png)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var result: [(String, [UInt8], UInt32)] = [], i = 8
        func word(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        while i + 12 <= bytes.count {
            let length = Int(word(i))
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            result.append((type, Array(bytes[(i + 8)..<(i + 8 + length)]), word(i + 8 + length)))
            i += 12 + length
        }
        return result
    }

    /// CRC-32 (ISO 3309), bit by bit: independent of zlib's, which PNG.encode uses.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    @Test func encodesValidGreyAndColourImages() throws {
        for channels in [1, 3] {
            let (w, h) = (5, 3)
            let pixels: [UInt8] = (0..<(w * h * channels)).map { i in UInt8(truncatingIfNeeded: i * 17) }
            let chunks = Self.chunks(PNG.encode(pixels: pixels, width: w, height: h, channels: channels))
            #expect(chunks.map(\.0) == ["IHDR", "IDAT", "IEND"])
            for (type, body, crc) in chunks { #expect(Self.crc32(Array(type.utf8) + body) == crc, "\(type) CRC") }
            let colourType: UInt8 = channels == 1 ? 0 : 2
            #expect(chunks[0].1 == [0, 0, 0, 5, 0, 0, 0, 3, 8, colourType, 0, 0, 0])
            let raw = [UInt8](try Gzip.decompressZlib(Data(chunks[1].1)))
            // Each scanline: filter byte 0, then the row.
            var expected: [UInt8] = []
            for y in 0..<h { expected += [0] + pixels[(y * w * channels)..<((y + 1) * w * channels)] }
            #expect(raw == expected)
        }
    }

    @Test func gridPlacesImagesWithBorders() {
        let images = Tensor(shape: [3, 1, 2, 2], scalars: [0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1])
        let g = PNG.grid(images, columns: 2, border: 1) { $0 }
        #expect(g.width == 2 * 2 + 3 && g.height == 2 * 2 + 3 && g.channels == 1)
        #expect(g.pixels[1 * g.width + 1] == 0 && g.pixels[1 * g.width + 4] == 128 && g.pixels[4 * g.width + 1] == 255)
        #expect(g.pixels[0] == 255 && g.pixels[4 * g.width + 4] == 255)  // border and the empty cell stay white
        let zoomed = PNG.grid(images, columns: 3, border: 0, zoom: 2) { $0 }
        #expect(zoomed.width == 12 && zoomed.height == 4)
        #expect(zoomed.pixels[3 * 12 + 3] == 0 && zoomed.pixels[3 * 12 + 4] == 128 && zoomed.pixels[0 * 12 + 11] == 255)
    }
}
