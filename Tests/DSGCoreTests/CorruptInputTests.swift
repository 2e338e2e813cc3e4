import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// Inputs that once trapped (an arithmetic overflow, an index out of range) must throw a typed error instead.
@Suite("Corrupt input throws, never traps")
struct CorruptInputTests {
    @Test func idxDimensionsWhoseSizeOverflowsAreATruncatedFile() {
        // Three dimensions of 2^32 − 1: their product overflows an Int.
        let header = IDXFolder.idx(magic: 0x803, dimensions: [], payload: []) + Data(repeating: 0xff, count: 12)
        #expect(throws: IDXError.truncated(file: "x", expectedBytes: Int.max, actualBytes: 16)) {
            try IDXFile.parse(header, rank: 3, name: "x")
        }
    }

    @Test func labelFilesOfAnotherRankAreRefused() throws {
        let bytes = IDXFolder.idx(magic: 0x803, dimensions: [1, 28, 28], payload: .init(repeating: 0, count: 784))
        let images = try IDXFile.parse(bytes, rank: 3, name: "i")
        let labels = try IDXFile.parse(bytes, rank: 3, name: "l")  // an image file given as labels
        #expect(throws: IDXError.wrongDimensions(file: "l", found: [1, 28, 28], expected: "[count]")) {
            try FashionMNIST.combine(images: images, imagesName: "i", labels: labels, labelsName: "l")
        }
    }

    @Test func safetensorsShapesWhoseSizeOverflowsAreRefused() {
        let header = #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#
        let data = SafetensorsTests.file(header, dataBytes: 8)
        #expect(
            throws: SafetensorsError.badEntry(
                file: "m", tensor: "w", reason: "shape [4611686018427387904, 4] is larger than any file")
        ) { try Safetensors.decode(data, name: "m") }
    }

    @Test func checkedElementCountReportsOverflow() {
        #expect(Shape([3, 4]).checkedElementCount == 12)
        #expect(Shape([Int.max, 2]).checkedElementCount == nil)
        #expect(Shape([Int.max, 2, 0]).checkedElementCount == nil)
        #expect(Shape([0, Int.max, 2]).checkedElementCount == 0)
    }

    @Test func adamStepTensorsOfTheWrongShapeAreRefused() throws {
        let model = try TestModels.batchNormNetwork()
        let adam = Adam(learningRate: 0.1)
        let name = model.tensors.first { $0.role == .parameter }!.name
        let shape = try model.tensor(named: name).shape
        for (step, why) in [(Tensor(shape: [0]), "empty"), (Tensor(shape: [1], repeating: 1.5), "fractional")] {
            let contents = Safetensors.Contents(tensors: [
                ("adam.m." + name, Tensor(shape: shape)), ("adam.v." + name, Tensor(shape: shape)),
                ("adam.step." + name, step),
            ])
            #expect(
                throws: SafetensorsError.badEntry(
                    file: "c", tensor: "adam.step." + name, reason: "the step count must be [1] and whole"), "\(why)"
            ) { try adam.restoreState(contents, of: model, prefix: "adam.", file: "c") }
        }
    }

    @Test func gzipTrailersOnlyHintTheSize() throws {
        // A valid stream whose trailer claims 4 GB: decompressing must not reserve it, and must still be right.
        let data = Data((0..<5000).map { UInt8($0 % 7) })
        var compressed = Gzip.compress(data)
        #expect(try Gzip.decompress(compressed) == data)
        compressed.replaceSubrange((compressed.count - 4)..<compressed.count, with: [0xff, 0xff, 0xff, 0xff])
        #expect(throws: GzipError.self) { try Gzip.decompress(compressed) }
    }

    @Test func trainingImagesOfAnotherShapeThanTheModelsInputAreRefused() throws {
        let model = try TestModels.batchNormNetwork()  // [1, 8, 8]
        let images = LabeledImages(images: Tensor(shape: [4, 1, 9, 9]), labels: [0, 1, 2, 0], classes: 3)
        #expect(throws: GraphError.tensorShape(name: "image", expected: [1, 8, 8], got: [1, 9, 9])) {
            try ClassifierTrainer(model: model, configuration: TrainingConfiguration(), train: images, test: images)
        }
    }
}
