import DSG
import DSGTestSupport
import Foundation
import Testing

/// `Model.load(contentsOf:)`: the one place where a file becomes a model.
@Suite("Model files")
struct ModelFileTests {
    /// A ResNet-20 whose BatchNorm running statistics are not the initial 0 and 1, so that a file that lost
    /// its buffers would give other outputs.
    static func resnet(input: Shape, classes: Int) throws -> Model {
        let model = try ResNet.resnet20(input: input, classes: classes, seed: 3)
        var random = SeededRandom(seed: 8)
        for t in model.tensors where t.name.hasSuffix("running_mean") || t.name.hasSuffix("running_var") {
            let positive = t.name.hasSuffix("running_var")
            let values = (0..<t.tensor.elementCount).map { _ in
                positive ? random.uniform(0.5, 2) : random.uniform(-0.3, 0.3)
            }
            try model.setTensor(named: t.name, to: Tensor(shape: t.tensor.shape, scalars: values))
        }
        return model
    }

    static func outputs(of model: Model, on samples: Tensor) throws -> [Float] {
        let executor = try GraphExecutor(model: model, batchSize: samples.shape[0], backward: false)
        try executor.forward([samples], training: false)
        return executor.output().scalars
    }

    static func expectSameWeights(_ a: Model, _ b: Model) {
        #expect(a.stateDict.map(\.name) == b.stateDict.map(\.name))
        #expect(a.stateDict.map { $0.tensor.scalars } == b.stateDict.map { $0.tensor.scalars })
    }

    // MARK: - Round trips

    @Test func aResNet20RoundTrips() throws {
        let folder = try TemporaryFolder("model-file")
        let original = try Self.resnet(input: [1, 28, 28], classes: 10)
        let file = folder.file("m.safetensors")
        let metadata = [Model.architectureKey: "resnet20", Model.inputShapeKey: "1x28x28"]
        try Safetensors.write(Safetensors.Contents(tensors: original.stateDict, metadata: metadata), to: file)
        let loaded = try Model.load(contentsOf: file)
        #expect(loaded !== original)
        #expect(loaded.inputs.map(\.shape) == [[1, 28, 28]])
        Self.expectSameWeights(loaded, original)
        var random = SeededRandom(seed: 1)
        let samples = random.normalTensor([2, 1, 28, 28])
        let expected = try Self.outputs(of: original, on: samples)
        #expect(expected.count == 20)
        #expect(try Self.outputs(of: loaded, on: samples) == expected)
    }

    @Test func aMobileNetV2WithItsWidthAndStridesRoundTrips() throws {
        let folder = try TemporaryFolder("model-file")
        let original = try MobileNetV2.build(
            input: [1, 16, 16], classes: 4, width: 0.25, strides: .smallImages, seed: 5)
        let file = folder.file("mobile.safetensors")
        let metadata = [
            Model.architectureKey: "mobilenetv2", Model.inputShapeKey: "1x16x16", Model.widthKey: "0.25",
            Model.stridesKey: "smallImages",
        ]
        try Safetensors.write(Safetensors.Contents(tensors: original.stateDict, metadata: metadata), to: file)
        let loaded = try Model.load(contentsOf: file)
        #expect(loaded.inputs.map(\.shape) == [[1, 16, 16]])
        #expect(try Self.pooledShape(loaded) == [1280, 2, 2])
        Self.expectSameWeights(loaded, original)
        var random = SeededRandom(seed: 2)
        let samples = random.normalTensor([2, 1, 16, 16])
        #expect(try Self.outputs(of: loaded, on: samples) == Self.outputs(of: original, on: samples))
        // Without its strides entry the file describes the ImageNet strides, which give a 1x1 map from 16x16: a
        // different graph with the same weights.
        let imageNet = folder.file("imagenet.safetensors")
        try Safetensors.write(
            Safetensors.Contents(tensors: original.stateDict, metadata: metadata.filter { $0.key != Model.stridesKey }),
            to: imageNet)
        #expect(try Self.pooledShape(Model.load(contentsOf: imageNet)) == [1280, 1, 1])
    }

    /// The shape of the feature map a MobileNetV2 pools.
    static func pooledShape(_ model: Model) throws -> Shape {
        let pool = try #require(model.nodes.first { $0.name == "pool" })
        return model.shape(of: pool.inputs[0])
    }

    /// A training checkpoint carries the trainer's model metadata, so it loads as the network it holds (with its
    /// momentum buffers left out), not as the ResNet-20 a file without an architecture is read as.
    @Test func aMobileNetV2TrainingCheckpointLoadsAsTheModel() throws {
        let folder = try TemporaryFolder("model-file")
        let model = try MobileNetV2.build(input: [1, 8, 8], classes: 2, width: 0.25, strides: .smallImages, seed: 1)
        var random = SeededRandom(seed: 4)
        let images = LabeledImages(
            images: random.normalTensor([8, 1, 8, 8]), labels: (0..<8).map { Int32($0 % 2) }, classes: 2)
        var settings = TrainingConfiguration()
        (settings.epochs, settings.batchSize) = (1, 4)
        let trainer = try ClassifierTrainer(model: model, configuration: settings, train: images, test: images)
        trainer.modelMetadata = Model.mobileNetV2Metadata(width: 0.25, strides: .smallImages)
            .merging([Model.inputShapeKey: "1x8x8"]) { $1 }
        let checkpoint = folder.file("checkpoint.safetensors")
        _ = try trainer.run(checkpoint: checkpoint)
        let loaded = try Model.load(contentsOf: checkpoint)
        Self.expectSameWeights(loaded, model)
        #expect(try Self.pooledShape(loaded) == [1280, 1, 1])
    }

    @Test(arguments: [
        (Model.widthKey, "0"), (Model.widthKey, "4.5"), (Model.widthKey, "wide"), (Model.stridesKey, "cifar"),
    ])
    func aMobileNetV2WithABadWidthOrStridesIsRefused(key: String, value: String) throws {
        let folder = try TemporaryFolder("model-file")
        let model = try MobileNetV2.build(input: [1, 16, 16], classes: 4, width: 0.25, strides: .smallImages)
        let url = folder.file("bad.safetensors")
        let metadata = [
            Model.architectureKey: "mobilenetv2", Model.inputShapeKey: "1x16x16", Model.widthKey: "0.25",
            Model.stridesKey: "smallImages",
        ].merging([key: value]) { $1 }
        try Safetensors.write(Safetensors.Contents(tensors: model.stateDict, metadata: metadata), to: url)
        #expect {
            try Model.load(contentsOf: url)
        } throws: { error in
            guard case SafetensorsError.badEntry(let file, _, let reason) = error else { return false }
            return file == "bad.safetensors" && reason.contains("'\(value)'")
        }
    }

    @Test func channelsClassesAndSideComeFromTheFile() throws {
        let folder = try TemporaryFolder("model-file")
        let original = try Self.resnet(input: [3, 16, 16], classes: 7)
        let file = folder.file("colour.safetensors")
        let metadata = [Model.architectureKey: "resnet20", Model.inputShapeKey: "3x16x16"]
        try Safetensors.write(Safetensors.Contents(tensors: original.stateDict, metadata: metadata), to: file)
        let loaded = try Model.load(contentsOf: file)
        #expect(loaded.inputs.map(\.shape) == [[3, 16, 16]])
        #expect(loaded.shape(of: loaded.outputs[0]) == [7])
        Self.expectSameWeights(loaded, original)
        var random = SeededRandom(seed: 2)
        let samples = random.normalTensor([2, 3, 16, 16])
        #expect(try Self.outputs(of: loaded, on: samples) == Self.outputs(of: original, on: samples))
    }

    @Test func filesWithoutMetadataAreResNet20OnTwentyEightPixelImages() throws {
        // What `dsg train` wrote before the metadata keys existed, with its optimizer state next to the weights.
        let folder = try TemporaryFolder("model-file")
        let original = try ResNet.resnet20(input: [3, 28, 28], classes: 5, seed: 4)
        let momentum = original.stateDict.prefix(2).map { ("optimizer.\($0.name).momentum", $0.tensor) }
        let file = folder.file("old.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: original.stateDict + momentum), to: file)
        let loaded = try Model.load(contentsOf: file)
        #expect(loaded.inputs.map(\.shape) == [[3, 28, 28]])
        #expect(loaded.shape(of: loaded.outputs[0]) == [5])
        Self.expectSameWeights(loaded, original)
    }

    @Test func theDefaultModelIsItsEmbeddedFile() throws {
        let model = try DSG.defaultModel()
        let file = try Model.load(contentsOf: DSG.defaultModelURL)
        #expect(DSG.defaultModelURL.lastPathComponent == "resnet20-fashion-mnist.safetensors")
        #expect(model.inputs.map(\.shape) == [[1, 28, 28]])
        #expect(model.shape(of: model.outputs[0]) == [10])
        Self.expectSameWeights(model, file)
        // Every call makes a new model: changing one leaves the next untouched.
        try model.setTensor(named: "fc.bias", to: Tensor(shape: [10], repeating: 9))
        #expect(try DSG.defaultModel().tensor(named: "fc.bias").scalars == file.tensor(named: "fc.bias").scalars)
    }

    // MARK: - Refused files

    /// The small BatchNorm network's weights under `name`, minus `dropping`, with `metadata`.
    static func write(
        _ folder: TemporaryFolder, _ name: String, dropping: String? = nil, metadata: [String: String] = [:]
    ) throws -> URL {
        let tensors = try TestModels.batchNormNetwork().stateDict.filter { $0.name != dropping }
        let url = folder.file(name)
        try Safetensors.write(Safetensors.Contents(tensors: tensors, metadata: metadata), to: url)
        return url
    }

    @Test func otherFormatsAreRefusedByTheirExtension() throws {
        let folder = try TemporaryFolder("model-file")
        // Valid safetensors contents: only the name decides.
        for name in ["m.txt", "m.pt"] {
            let url = try Self.write(folder, name)
            #expect(throws: ModelFileError.unsupportedFormat(file: name)) { try Model.load(contentsOf: url) }
        }
        // A .onnx name goes to the ONNX reader, which finds no ONNX model in these bytes.
        #expect(throws: ONNXError.self) { try Model.load(contentsOf: try Self.write(folder, "m.onnx")) }
    }

    @Test func quantizedModelsAreRefused() throws {
        let folder = try TemporaryFolder("model-file")
        var random = SeededRandom(seed: 6)
        let quantized = try PTQCalibrator(configuration: PTQConfiguration())
            .quantize(try TestModels.batchNormNetwork(), calibration: random.normalTensor([4, 1, 8, 8]))
        let url = folder.file("q.safetensors")
        try quantized.save(to: url)
        #expect(throws: ModelFileError.quantizedModel(file: "q.safetensors")) { try Model.load(contentsOf: url) }
    }

    @Test func otherArchitecturesAreRefused() throws {
        let folder = try TemporaryFolder("model-file")
        let url = try Self.write(folder, "vgg.safetensors", metadata: [Model.architectureKey: "vgg"])
        #expect(throws: ModelFileError.unsupportedArchitecture(file: "vgg.safetensors", architecture: "vgg")) {
            try Model.load(contentsOf: url)
        }
    }

    @Test(arguments: ["conv1.weight", "fc.weight"])
    func filesWithoutTheShapeGivingWeightsAreRefused(tensor: String) throws {
        let folder = try TemporaryFolder("model-file")
        let url = try Self.write(folder, "partial.safetensors", dropping: tensor)
        #expect(throws: SafetensorsError.missingTensor(file: "partial.safetensors", tensor: tensor)) {
            try Model.load(contentsOf: url)
        }
    }

    @Test(arguments: ["1x28", "3x28x28", "1x0x28", "1xax28", "1x28x28x1", "28"])
    func aMalformedInputShapeIsRefused(text: String) throws {
        let folder = try TemporaryFolder("model-file")
        let url = try Self.write(folder, "shape.safetensors", metadata: [Model.inputShapeKey: text])
        let reason = "input shape '\(text)' is not C x H x W with C = 1"
        #expect(throws: SafetensorsError.badEntry(file: "shape.safetensors", tensor: "__metadata__", reason: reason)) {
            try Model.load(contentsOf: url)
        }
    }
}
