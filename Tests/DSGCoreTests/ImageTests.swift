import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// PNG and JPEG decoding, crop and resize, against what PIL makes of the same files
/// (Fixtures/images/generate_images.py), and the labelled image folder with its errors.
@Suite("Image files and folders")
struct ImageTests {
    static let golden = try! Fixture(named: "images/images.json", in: .module)["files"]
    static let names = golden.keys

    static func url(_ name: String) -> URL {
        Bundle.module.url(forResource: "images/\(name)", withExtension: nil, subdirectory: "Fixtures")!
    }

    static func bytes(_ fixture: Fixture, _ key: String) -> [UInt8] { fixture.floats(key).map { UInt8($0) } }

    @Test(arguments: names) func decodesAsPILDoes(name: String) throws {
        let expected = Self.golden[name]
        let image = try DecodedImage(contentsOf: Self.url(name))
        #expect(image.width == Int(expected.double("width")) && image.height == Int(expected.double("height")))
        #expect(image.channels == Int(expected.double("channels")))
        #expect(image.pixels == Self.bytes(expected, "pixels"))
    }

    /// ImagePreprocessing's crop of the input's aspect (0.875 of it), PIL's antialiased bicubic resize and PIL's
    /// grey conversion, byte for byte: a square and a wide input, shrinking and (for the small files) enlarging.
    @Test(arguments: names) func cropsAndResizesAsPILDoes(name: String) throws {
        let expected = Self.golden[name]
        let image = try DecodedImage(contentsOf: Self.url(name))
        let preprocessing = ImagePreprocessing(cropFraction: 0.875)
        for (w, h) in [(16, 16), (12, 10)] {
            for (channels, key) in [(3, "resized_\(w)x\(h)"), (1, "grey_\(w)x\(h)")] {
                let planar = try preprocessing.input(from: image, shape: [channels, h, w], name: name)
                // Back to interleaved bytes (the input is pixel / 255 with mean 0 and deviation 1).
                let bytes = (0..<(h * w * channels)).map { i in
                    UInt8((planar[(i % channels) * h * w + i / channels] * 255).rounded())
                }
                let pil = Self.bytes(expected, key)
                let sameColours = image.channels == channels || channels == 1
                #expect(bytes == (sameColours ? pil : pil.flatMap { [$0, $0, $0] }), "\(name) \(key)")
            }
        }
    }

    @Test func preprocessingNormalisesPerChannelAndChecksItsValues() throws {
        let image = try DecodedImage(contentsOf: Self.url("rgb.png"))
        let shape: Shape = [3, 23, 23]
        let p = ImagePreprocessing(mean: [0.5, 0.25, 0], standardDeviation: [0.5, 0.25, 2])
        let input = try p.input(from: image, shape: shape, name: "rgb.png")
        // Fraction 1 on a square input: the centred 23x23 box, no resampling (offset (37 - 23 + 1) / 2 = 7).
        let x = 7 + 4, y = 5, c = 1
        let pixel = Float(image.pixels[(y * image.width + x) * 3 + c])
        expectClose([input[c * 23 * 23 + y * 23 + (x - 7)]], [(pixel / 255 - 0.25) / 0.25])
        #expect(throws: ImageError.invalidPreprocessing("give one mean or one per channel (3), not 2 values")) {
            try ImagePreprocessing(mean: [0, 0]).input(from: image, shape: shape, name: "x")
        }
        #expect(throws: ImageError.self) { try ImagePreprocessing(standardDeviation: [0]).validate(channels: 3) }
        #expect(throws: ImageError.self) { try ImagePreprocessing(cropFraction: 1.5).validate(channels: 1) }
        #expect(throws: ImageError.self) { try ImagePreprocessing(mean: [.nan]).validate(channels: 1) }
        // 23 pixels high cannot fill a 24x24 input without enlarging.
        #expect(
            throws: ImageError.tooSmall(file: "x", width: 37, height: 23, crop: 23, inputWidth: 24, inputHeight: 24)
        ) {
            try ImagePreprocessing().input(from: image, shape: [3, 24, 24], name: "x")
        }
    }

    @Test func truncatedAndCorruptFilesAreNamedErrors() throws {
        for name in Self.names {
            let data = try Data(contentsOf: Self.url(name))
            // Inside the header, the middle, and the last compressed bytes (a PNG's IDAT, a JPEG's scan).
            for cut in [8, data.count / 3, data.count - 20] {
                do {
                    let image = try DecodedImage(decoding: data.prefix(cut), name: "cut-\(name)")
                    Issue.record(
                        "\(name) cut at \(cut) of \(data.count) bytes decoded to \(image.width)x\(image.height)")
                } catch { #expect(error.description.contains("cut-\(name)"), "\(error)") }
            }
            // A flipped byte in the middle: either refused or decoded to an image of the right size, never a crash.
            var flipped = data
            flipped[data.count / 2] ^= 0x5A
            if let image = try? DecodedImage(decoding: flipped, name: name) {
                #expect(image.pixels.count == image.width * image.height * image.channels)
            }
        }
        #expect(throws: ImageError.notAnImage(file: "x.png")) {
            try DecodedImage(decoding: Data("GIF89a".utf8), name: "x.png")
        }
    }

    /// Headers claiming 65535 x 65535 pixels (a valid PNG IHDR with its CRC) or 16000 x 16000 (a JPEG frame
    /// header; TurboJPEG itself stops at 65500) are refused by size before gigabytes are allocated.
    @Test func hugeDimensionsAreRefused() throws {
        var png = try Data(contentsOf: Self.url("grey.png"))
        for i in 16..<24 { png[i] = i % 4 < 2 ? 0 : 0xFF }  // IHDR width and height, big-endian
        let crc = PNGTests.crc32(Array(png[12..<29]))  // over the chunk type and its 13 bytes
        for k in 0..<4 { png[29 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
        #expect(throws: ImageError.tooLarge(file: "huge.png", width: 65535, height: 65535)) {
            try DecodedImage(decoding: png, name: "huge.png")
        }
        var jpeg = try Data(contentsOf: Self.url("grey.jpg"))
        let sof = try #require((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        for k in [5, 7] { (jpeg[sof + k], jpeg[sof + k + 1]) = (0x3E, 0x80) }  // height, width after length, precision
        #expect(throws: ImageError.tooLarge(file: "huge.jpg", width: 16000, height: 16000)) {
            try DecodedImage(decoding: jpeg, name: "huge.jpg")
        }
    }

    /// Top-k, agreement and KL divergence on logits worked out by hand.
    @Test func logitComparisons() {
        let logits = Tensor(shape: [3, 4], scalars: [0, 3, 2, 1, 5, 1, 1, 0, 1, 1, 1, 1])
        // Row 0 ranks 1, 2, 3, 0; row 1 ranks 0 first; row 2 ties everywhere, so label 3 ranks last.
        #expect(Evaluation.topKAccuracy(of: logits, labels: [2, 0, 3], k: 1) == 1.0 / 3)
        #expect(Evaluation.topKAccuracy(of: logits, labels: [2, 0, 3], k: 2) == 2.0 / 3)
        #expect(Evaluation.topKAccuracy(of: logits, labels: [2, 0, 3], k: 4) == 1)
        let other = Tensor(shape: [3, 4], scalars: [0, 1, 2, 0, 5, 1, 1, 0, 2, 1, 1, 1])
        #expect(Evaluation.agreement(logits, other) == 2.0 / 3)
        #expect(Evaluation.meanKLDivergence(of: logits, from: logits) == 0)
        // Two classes: p = softmax(0, 0) = (1/2, 1/2), q = softmax(0, ln 3) = (1/4, 3/4);
        // KL(p || q) = 1/2 ln 2 + 1/2 ln(2/3).
        let p = Tensor(shape: [1, 2], scalars: [0, 0]), q = Tensor(shape: [1, 2], scalars: [0, Float(log(3.0))])
        #expect(abs(Evaluation.meanKLDivergence(of: q, from: p) - (0.5 * log(2.0) + 0.5 * log(2.0 / 3))) < 1e-7)
    }

    @Test func foldersByClassAndByFileName() throws {
        let folder = try TemporaryFolder()
        let fm = FileManager.default
        for (label, file) in [(2, "rgb.png"), (0, "rgb.jpg"), (2, "progressive.jpg")] {
            try fm.createDirectory(at: folder.file("\(label)"), withIntermediateDirectories: true)
            try fm.copyItem(at: Self.url(file), to: folder.file("\(label)/\(file)"))
        }
        try Data("not an image".utf8).write(to: folder.file("2/README.txt"))
        // A folder whose name is not a class index (here, a negative number) is not a class.
        try fm.createDirectory(at: folder.file("-1"), withIntermediateDirectories: true)
        try fm.copyItem(at: Self.url("rgb.png"), to: folder.file("-1/rgb.png"))
        let byClass = try ImageFolder(folder.url)
        #expect(byClass.entries.map(\.label) == [0, 2, 2])
        #expect(byClass.entries.map(\.file.lastPathComponent) == ["rgb.jpg", "progressive.jpg", "rgb.png"])
        #expect(byClass.prefix(2).entries == Array(byClass.entries.prefix(2)))
        let set = try byClass.load(shape: [1, 16, 16], classes: 3, preprocessing: ImagePreprocessing())
        #expect(set.images.shape == [3, 1, 16, 16] && set.labels == [0, 2, 2])
        #expect(throws: ImageError.labelOutOfRange(file: byClass.entries[1].file.path, label: 2, classes: 2)) {
            try byClass.load(shape: [1, 16, 16], classes: 2, preprocessing: ImagePreprocessing())
        }
        #expect(throws: ImageError.unsupportedInput(shape: [2, 16, 16])) {
            try byClass.load(shape: [2, 16, 16], classes: 3, preprocessing: ImagePreprocessing())
        }

        let flat = try TemporaryFolder()
        try fm.copyItem(at: Self.url("grey.png"), to: flat.file("fashion_01_7.png"))
        try fm.copyItem(at: Self.url("grey.jpg"), to: flat.file("fashion_00_3.jpg"))
        #expect(try ImageFolder(flat.url).entries.map(\.label) == [3, 7])
        try fm.copyItem(at: Self.url("rgb.png"), to: flat.file("unlabelled.png"))
        #expect(throws: ImageError.noLabel(file: flat.file("unlabelled.png").path)) { try ImageFolder(flat.url) }
        // A corrupt image in the folder is named when the folder loads.
        try fm.removeItem(at: flat.file("unlabelled.png"))
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]).write(to: flat.file("broken_4.jpg"))
        do {
            _ = try ImageFolder(flat.url).load(shape: [1, 8, 8], classes: 10, preprocessing: ImagePreprocessing())
            Issue.record("a truncated JPEG loaded")
        } catch { #expect(error.description.contains("broken_4.jpg")) }

        let empty = try TemporaryFolder()
        try Data("x".utf8).write(to: empty.file("notes.txt"))
        #expect(throws: ImageError.noImages(folder: empty.url.path)) { try ImageFolder(empty.url) }
        #expect(throws: ImageError.self) { try ImageFolder(empty.file("missing")) }
    }
}
