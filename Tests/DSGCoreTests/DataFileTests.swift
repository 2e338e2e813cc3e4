import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// Writes IDX files (gzip) into a fresh folder, so every defect can be fed to the reader.
struct IDXFolder {
    let folder: TemporaryFolder
    var url: URL { folder.url }

    init() throws { folder = try TemporaryFolder("dsg-idx") }

    static func idx(magic: UInt32, dimensions: [Int], payload: [UInt8]) -> Data {
        var bytes: [UInt8] = []
        for word in [magic] + dimensions.map(UInt32.init) {
            bytes += [24, 16, 8, 0].map { UInt8((word >> UInt32($0)) & 0xff) }
        }
        return Data(bytes + payload)
    }

    /// The test split with `count` images whose pixels are `i % 256` and labels `i % 10`, then `mutate`d.
    func write(
        count: Int = 3, images: ((inout Data) -> Void)? = nil, labels: ((inout Data) -> Void)? = nil, gzip: Bool = true
    ) throws {
        var imageData = Self.idx(
            magic: 0x803, dimensions: [count, 28, 28], payload: (0..<(count * 784)).map { UInt8($0 % 256) })
        var labelData = Self.idx(magic: 0x801, dimensions: [count], payload: (0..<count).map { UInt8($0 % 10) })
        images?(&imageData)
        labels?(&labelData)
        try (gzip ? Gzip.compress(imageData) : imageData).write(
            to: url.appendingPathComponent("t10k-images-idx3-ubyte.gz"))
        try (gzip ? Gzip.compress(labelData) : labelData).write(
            to: url.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
    }
}

@Suite("Fashion-MNIST IDX files")
struct IDXTests {
    @Test func gzipRoundTrip() throws {
        let data = Data((0..<100_000).map { UInt8(($0 * 7) % 251) })
        #expect(try Gzip.decompress(Gzip.compress(data)) == data)
        #expect(throws: GzipError.notGzip) { try Gzip.decompress(Data(repeating: 0, count: 40)) }
    }

    @Test func readsAndNormalises() throws {
        let folder = try IDXFolder()
        try folder.write()
        let test = try FashionMNIST.load(.test, from: folder.url)
        #expect(test.count == 3 && test.labels == [0, 1, 2] && test.images.shape == [3, 1, 28, 28])
        // Pixel 5 has value 5: (5 / 255 - 0.2860) / 0.3530.
        #expect(abs(test.images[5] - (5 / 255 - 0.2860) / 0.3530) < 1e-6)
    }

    @Test func randomSamplesAreDistinctSeededAndKeepTheirLabels() throws {
        // Image i is filled with i, its label is i % 10: a drawn image names its own index.
        let n = 50
        let data = LabeledImages(
            images: Tensor(shape: [n, 1, 2, 2], scalars: (0..<n).flatMap { Array(repeating: Float($0), count: 4) }),
            labels: (0..<n).map { Int32($0 % 10) }, classes: 10)
        let drawn = data.randomSample(20, seed: 3)
        let indices = (0..<20).map { Int(drawn.images[$0 * 4]) }
        #expect(drawn.images.shape == [20, 1, 2, 2] && Set(indices).count == 20)
        #expect(drawn.labels == indices.map { Int32($0 % 10) })
        #expect(
            data.randomSample(20, seed: 3).images.scalars == drawn.images.scalars
                && data.randomSample(20, seed: 4).images.scalars != drawn.images.scalars)
        #expect(indices != Array(0..<20), "shuffled, not the first 20")
        #expect(data.randomSample(80, seed: 0).count == n)
    }

    @Test func everyDefectIsATypedErrorNamingTheFile() throws {
        let images = "t10k-images-idx3-ubyte.gz", labels = "t10k-labels-idx1-ubyte.gz"
        let cases: [(String, IDXError, (IDXFolder) throws -> Void)] = [
            ("not gzip", .notGzip(file: images), { try $0.write(gzip: false) }),
            (
                "bad magic", .badMagic(file: images, found: 0x804, expected: 0x803),
                { try $0.write(images: { $0[3] = 0x04 }) }
            ),
            (
                "truncated data", .truncated(file: images, expectedBytes: 16 + 3 * 784, actualBytes: 16 + 3 * 784 - 10),
                { try $0.write(images: { $0.removeLast(10) }) }
            ),
            (
                "truncated header", .truncated(file: labels, expectedBytes: 8, actualBytes: 6),
                { try $0.write(labels: { $0.removeLast($0.count - 6) }) }
            ),
            (
                "trailing bytes", .trailingBytes(file: labels, expectedBytes: 11, actualBytes: 12),
                { try $0.write(labels: { $0.append(0) }) }
            ),
            (
                "wrong image size", .wrongDimensions(file: images, found: [3, 28, 27], expected: "[count, 28, 28]"),
                {
                    try $0.write(images: {
                        $0[15] = 27
                        $0.removeLast(3 * 28)
                    })
                }
            ),
            (
                "counts differ", .countMismatch(images: images, imageCount: 3, labels: labels, labelCount: 2),
                {
                    try $0.write(labels: {
                        $0[7] = 2
                        $0.removeLast()
                    })
                }
            ),
            (
                "label out of range", .labelOutOfRange(file: labels, index: 1, label: 10, classes: 10),
                { try $0.write(labels: { $0[9] = 10 }) }
            ),
        ]
        for (name, expected, make) in cases {
            let folder = try IDXFolder()
            try make(folder)
            #expect(throws: expected, "\(name)") { try FashionMNIST.load(.test, from: folder.url) }
        }
        // A gzip stream cut short and a missing file.
        let folder = try IDXFolder()
        try folder.write()
        let file = folder.url.appendingPathComponent(images)
        let whole = try Data(contentsOf: file)
        try whole.prefix(whole.count / 2).write(to: file)
        #expect(throws: IDXError.corrupt(file: images, reason: GzipError.truncated.description)) {
            try FashionMNIST.load(.test, from: folder.url)
        }
        do {
            _ = try FashionMNIST.load(.train, from: folder.url)
            Issue.record("a missing file must throw")
        } catch {
            #expect(error.description.hasPrefix("train-images-idx3-ubyte.gz: cannot be read"))
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory.path)))
    func realTestSetLoads() throws {
        let test = try FashionMNIST.load(.test)
        #expect(test.count == 10_000)
        #expect((0..<10).allSatisfy { k in test.labels.filter { $0 == k }.count == 1000 })
        let mean =
            test.images.withUnsafeBufferPointer { $0.reduce(0.0) { $0 + Double($1) } }
            / Double(test.images.elementCount)
        #expect(abs(mean) < 0.02, "normalised test pixels should have mean near 0, got \(mean)")
    }
}

@Suite("safetensors files")
struct SafetensorsTests {
    static func sample() -> Safetensors.Contents {
        Safetensors.Contents(
            tensors: [
                ("a.weight", Tensor(shape: [2, 3], scalars: [1, -2, 3.5, 0, 3.25, -1e-8])),
                ("b", Tensor(shape: [], scalars: [7])),
            ],
            metadata: ["note": "test"])
    }

    @Test func roundTripAndLayout() throws {
        let data = Safetensors.encode(Self.sample())
        let headerSize = data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect((8 + headerSize) % 8 == 0 && data.count == 8 + headerSize + 7 * 4)
        let back = try Safetensors.decode(data, name: "x.safetensors")
        #expect(back.tensors.map(\.name) == ["a.weight", "b"])
        #expect(back.tensor(named: "a.weight")?.scalars == Self.sample().tensors[0].tensor.scalars)
        #expect(back.metadata == ["note": "test"])
    }

    /// Files exchanged with Python's `safetensors` package (Fixtures/safetensors_interop.py checked the
    /// Swift-written one in Python and wrote the Python one).
    @Test func interoperatesWithPythonSafetensors() throws {
        let fromPython = try Safetensors.read(
            try #require(
                Bundle.module.url(forResource: "python_written", withExtension: "safetensors", subdirectory: "Fixtures")
            ))
        #expect(fromPython.tensors.map(\.name).sorted() == ["a.weight", "b"])
        for (name, tensor) in Self.sample().tensors {
            #expect(
                fromPython.tensor(named: name)?.shape == tensor.shape
                    && fromPython.tensor(named: name)?.scalars == tensor.scalars, "\(name)")
        }
        #expect(fromPython.metadata == ["note": "test"])
        // What we write today is byte for byte what Python read.
        let swiftWritten = try Data(
            contentsOf: try #require(
                Bundle.module.url(forResource: "swift_written", withExtension: "safetensors", subdirectory: "Fixtures"))
        )
        #expect(Safetensors.encode(Self.sample()) == swiftWritten)
    }

    /// The bytes of a file whose JSON header is `header` followed by `dataBytes` bytes of data.
    static func file(_ header: String, dataBytes: Int) -> Data {
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        return d + Data(header.utf8) + Data(repeating: 0, count: dataBytes)
    }

    @Test func everyDefectIsATypedError() {
        let f = "m.safetensors"
        let entry = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let cases: [(String, Data, SafetensorsError)] = [
            ("too short", Data([1, 2, 3]), .tooShort(file: f, bytes: 3)),
            (
                "header larger than file", Self.file(entry, dataBytes: 8).prefix(20),
                .headerSize(file: f, declared: UInt64(entry.utf8.count), available: 12)
            ),
            ("not JSON", Self.file("[1, 2]", dataBytes: 0), .headerNotJSON(file: f)),
            (
                "dtype", Self.file(#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4),
                .unsupportedDType(file: f, tensor: "w", dtype: "F16")
            ),
            (
                "size vs shape", Self.file(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataBytes: 8),
                .offsets(file: f, tensor: "w", reason: "shape [3] needs 12 bytes, data_offsets span 8")
            ),
            (
                "truncated data", Self.file(entry, dataBytes: 4),
                .offsets(file: f, tensor: "w", reason: "data_offsets end at 8, past the 4 data bytes (truncated file?)")
            ),
            (
                "hole", Self.file(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8),
                .uncoveredData(file: f, reason: "bytes 0..<4 of the data belong to no tensor")
            ),
            (
                "trailing data", Self.file(entry, dataBytes: 12),
                .uncoveredData(file: f, reason: "4 bytes after the last tensor belong to no tensor")
            ),
            (
                "bad shape", Self.file(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, dataBytes: 0),
                .badEntry(file: f, tensor: "w", reason: "shape must be a list of non-negative integers")
            ),
        ]
        for (name, data, expected) in cases {
            #expect(throws: expected, "\(name)") { try Safetensors.decode(data, name: f) }
        }
    }

    @Test func modelLoadingChecksNamesAndShapes() throws {
        let model = try ResNet.resnet20()
        let state = model.stateDict
        let copy = try ResNet.resnet20(seed: 9)
        try copy.load(Safetensors.Contents(tensors: state), file: "r.safetensors")
        #expect(try copy.tensor(named: "fc.weight").scalars == model.tensor(named: "fc.weight").scalars)
        #expect(throws: SafetensorsError.missingTensor(file: "r", tensor: "fc.bias")) {
            try copy.load(Safetensors.Contents(tensors: state.filter { $0.name != "fc.bias" }), file: "r")
        }
        #expect(throws: SafetensorsError.unexpectedTensor(file: "r", tensor: "extra")) {
            try copy.load(Safetensors.Contents(tensors: state + [("extra", Tensor(shape: [1]))]), file: "r")
        }
        let wrong = state.map { $0.name == "fc.bias" ? ($0.name, Tensor(shape: [3])) : $0 }
        #expect(throws: SafetensorsError.shape(file: "r", tensor: "fc.bias", expected: [10], found: [3])) {
            try copy.load(Safetensors.Contents(tensors: wrong), file: "r")
        }
    }
}
