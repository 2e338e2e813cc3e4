import ArgumentParser
import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGCommandLine

@Suite("dsg inspect and models of other inputs")
struct InspectAndInputTests {
    @Test func inspectReportsTheEmbeddedModel() throws {
        let report = InspectCommand.report(try DSG.defaultModel(), name: "embedded model")
        let lines = report.split(separator: "\n").map(String.init)
        #expect(lines[0] == "model: embedded model")
        #expect(lines[1] == "input: image [1, 28, 28]; output: [10]")
        #expect(lines[2] == "parameters: 272186 in 65 tensors; buffers: 42 tensors")
        #expect(
            lines[3] == "nodes: 73 (Add 9, BatchNorm 21, Conv2d 21, GlobalAveragePool 1, Linear 1, ReLU 19, Reshape 1)")
        #expect(lines.contains("  stage3.block2.bn2  64 channels, input [64, 7, 7]"))
        #expect(
            lines.last
                == "quantization: 22 convolution and linear weights (per output channel), 19 activations after "
                + "ReLU, ReLU6 or a clip (per tensor)")
    }

    /// `dsg export` writes the model as ONNX; `dsg evaluate --save-logits` writes what another runtime is compared
    /// with (the images, labels and logits).
    @Test func exportAndSavedLogitsDescribeTheSameModel() throws {
        let folder = try TemporaryFolder("export")
        let onnx = folder.file("model.onnx"), logits = folder.file("logits.safetensors")
        var export = try DSGCommand.parseAsRoot(["export", "--output", onnx.path])
        try export.run()
        var evaluate = try DSGCommand.parseAsRoot(["evaluate", "--limit", "20", "--save-logits", logits.path])
        try evaluate.run()
        let saved = try Safetensors.read(logits)
        let images = try #require(saved.tensor(named: "images")), values = try #require(saved.tensor(named: "logits"))
        #expect(images.shape == [20, 1, 28, 28] && values.shape == [20, 10])
        #expect(try #require(saved.tensor(named: "labels")).shape == [20])
        let imported = try Model.load(contentsOf: onnx)
        #expect(try Evaluation.logits(of: imported, on: images).scalars == values.scalars)
    }

    @Test func inspectWarnsWhenThereIsNoBatchNorm() throws {
        var b = ModelBuilder(seed: 1)
        let x = b.input("image", [1, 4, 4])
        let model = b.finish(outputs: [try b.linear(try b.flatten(x, "flat"), "fc", outFeatures: 2)])
        #expect(
            InspectCommand.report(model, name: "m").hasSuffix(
                "warning: no BatchNorm layer, so DSG cannot synthesise samples for it"))
    }

    /// A command that measures on Fashion-MNIST says so when the model takes other images.
    @Test func fashionMNISTCommandsRefuseOtherInputs() throws {
        let folder = try TemporaryFolder("other-input")
        let model = try ResNet.resnet20(input: [3, 16, 16], classes: 10)
        let file = folder.file("colour.safetensors")
        try Safetensors.write(
            Safetensors.Contents(tensors: model.stateDict, metadata: [Model.inputShapeKey: "3x16x16"]), to: file)
        var options = ModelOptions()
        options.model = file.path
        #expect(try options.load().inputs[0].shape == [3, 16, 16])
        #expect(throws: FashionMNISTInputError.self) { try options.loadForFashionMNIST() }
        #expect(
            FashionMNISTInputError(model: "m", shape: [3, 16, 16]).description
                == "m takes [3, 16, 16] images, but this command measures top-1 on Fashion-MNIST, whose images are "
                + "[1, 28, 28]; `dsg generate`, `dsg inspect`, `dsg export` and PTQ from samples work on any model, "
                + "and --images measures on a folder of its images")
        // PTQ from samples quantizes it and writes the file, and says it measured no accuracy.
        var generation = GenerationConfiguration(preset: .dsg)
        (generation.count, generation.iterations) = (4, 1)
        try DSG.generateSamples(from: try options.load(), configuration: generation).save(
            to: folder.file("samples.safetensors"))
        let onnx = folder.file("colour-w8a8.onnx")
        var quantize = try DSGCommand.parseAsRoot([
            "quantize", "--model", file.path, "--samples", folder.file("samples.safetensors").path, "--weight-bits",
            "8", "--activation-bits", "8", "--output", onnx.path,
        ])
        try quantize.run()
        #expect(FileManager.default.fileExists(atPath: onnx.path))
        var logits = try DSGCommand.parseAsRoot([
            "quantize", "--model", file.path, "--samples", folder.file("samples.safetensors").path, "--save-logits",
            folder.file("l.safetensors").path,
        ])
        #expect(throws: ExitCode.failure) { try logits.run() }
    }

    /// Fashion-MNIST test images written as PNG files and read back through `--images` (libpng, the default
    /// Fashion-MNIST normalisation of the embedded model) are the very inputs the IDX loader gives, so evaluate
    /// and quantize measure the same logits on them; a label beyond the model's classes fails with a message.
    @Test func evaluateAndQuantizeMeasureOnAnImageFolder() throws {
        let folder = try TemporaryFolder("images")
        let test = try FashionMNIST.load(.test).prefix(6)
        let pixels = test.images.scalars.map {
            UInt8(($0 * FashionMNIST.standardDeviation + FashionMNIST.mean) * 255 + 0.5)
        }
        for i in 0..<test.count {
            let png = PNG.encode(
                pixels: Array(pixels[(i * 784)..<((i + 1) * 784)]), width: 28, height: 28, channels: 1)
            try png.write(to: folder.file("fashion_\(i)_\(test.labels[i]).png"))
        }
        // --limit decodes only the first images.
        var limited = try DSGCommand.parseAsRoot([
            "evaluate", "--images", folder.url.path, "--limit", "2", "--save-logits",
            folder.file("two.safetensors").path,
        ])
        try limited.run()
        #expect(try Safetensors.read(folder.file("two.safetensors")).tensor(named: "labels")?.shape == [2])
        let saved = folder.file("logits.safetensors")
        var evaluate = try DSGCommand.parseAsRoot([
            "evaluate", "--images", folder.url.path, "--save-logits", saved.path,
        ])
        try evaluate.run()
        let contents = try Safetensors.read(saved)
        #expect(try #require(contents.tensor(named: "labels")).scalars == test.labels.map(Float.init))
        expectClose(try #require(contents.tensor(named: "images")).scalars, test.images.scalars, rtol: 0, atol: 1e-5)
        let model = try DSG.defaultModel()
        expectClose(
            try #require(contents.tensor(named: "logits")).scalars,
            try Evaluation.logits(of: model, on: test.images).scalars, rtol: 1e-4, atol: 1e-4)

        let quantizedLogits = folder.file("q.safetensors")
        var quantize = try DSGCommand.parseAsRoot([
            "quantize", "--real-images", "8", "--weight-bits", "8", "--activation-bits", "8", "--images",
            folder.url.path, "--output", folder.file("q8.safetensors").path, "--save-logits", quantizedLogits.path,
        ])
        try quantize.run()
        #expect(try Safetensors.read(quantizedLogits).tensor(named: "logits")?.shape == [6, 10])

        try PNG.encode(pixels: Array(pixels[..<784]), width: 28, height: 28, channels: 1).write(
            to: folder.file("fashion_9_12.png"))
        var outOfRange = try DSGCommand.parseAsRoot(["evaluate", "--images", folder.url.path])
        #expect(throws: ExitCode.failure) { try outOfRange.run() }
        #expect(
            errorMessage(ImageError.labelOutOfRange(file: "f_12.png", label: 12, classes: 10))
                == "error: f_12.png has label 12, but the model has 10 classes (0..<10)")
    }

    /// `--integer-kernels` defaults to symmetric weights (onnxruntime's fast kernels need zero weight zero points);
    /// an explicit `--weight-range` wins, and without integer kernels the default stays min/max.
    @Test func normalisationValuesAcceptFractions() {
        #expect(ImageFolderOptions.numbers("127/255, 0.5,2") == [127 / 255, 0.5, 2])
        #expect(ImageFolderOptions.numbers("1/0") == [.infinity])  // refused later as not finite
        for bad in ["", "a", "1/", "1/2/3", "0.5,,1"] { #expect(ImageFolderOptions.numbers(bad) == nil, "\(bad)") }
    }

    @Test func integerKernelsDefaultToSymmetricWeights() throws {
        func range(_ arguments: [String]) throws -> PTQConfiguration.WeightRange {
            try QuantizeCommand.parse(["--samples", "s"] + arguments).ptqConfiguration().weightRange
        }
        #expect(try range(["--integer-kernels"]) == .symmetric)
        #expect(try range(["--integer-kernels", "--weight-range", "minMax"]) == .minMax)
        #expect(try range([]) == .minMax)
    }

    /// `--reconstruction` starts from least-squares ranges (as BRECQ's and QDrop's code) unless told otherwise;
    /// integer kernels keep their symmetric weights.
    @Test func reconstructionDefaultsToLeastSquaresRanges() throws {
        func ranges(_ arguments: [String]) throws -> (
            PTQConfiguration.WeightRange, PTQConfiguration.ActivationCalibration
        ) {
            let c = try QuantizeCommand.parse(["--samples", "s"] + arguments).ptqConfiguration()
            return (c.weightRange, c.activationCalibration)
        }
        #expect(try ranges(["--reconstruction", "brecq"]) == (.mse, .mse))
        #expect(try ranges([]) == (.minMax, .meanSampleExtremes))
        #expect(try ranges(["--reconstruction", "qdrop", "--calibration", "ema"]) == (.mse, .meanSampleExtremes))
        #expect(try ranges(["--reconstruction", "adaround", "--integer-kernels"]) == (.symmetric, .mse))
    }

    /// `dsg quantize --reconstruction adaround` on the embedded model, and `--reconstruction brecq` on it
    /// exported to ONNX and imported, write a QDQ file and a checkpoint (the learned weights, and with BRECQ the
    /// 19 learned activation ranges); run again, each learns nothing more and writes the same file.
    @Test(arguments: ["adaround", "brecq"])
    func reconstructionFromTheCommandLineExportsAndResumes(method: String) throws {
        let folder = try TemporaryFolder("\(method)-cli")
        var generation = GenerationConfiguration(preset: .dsg)
        (generation.count, generation.iterations) = (4, 1)
        try DSG.generateSamples(from: try DSG.defaultModel(), configuration: generation).save(
            to: folder.file("samples.safetensors"))
        // Two test images as the measured set: the 10,000 of Fashion-MNIST take minutes in a debug build.
        let test = try FashionMNIST.load(.test).prefix(2)
        try FileManager.default.createDirectory(at: folder.file("images"), withIntermediateDirectories: true)
        for i in 0..<2 {
            let pixels = test.images.scalars[(i * 784)..<((i + 1) * 784)].map {
                UInt8(($0 * FashionMNIST.standardDeviation + FashionMNIST.mean) * 255 + 0.5)
            }
            try PNG.encode(pixels: pixels, width: 28, height: 28, channels: 1).write(
                to: folder.file("images/f_\(i)_\(test.labels[i]).png"))
        }
        var model: [String] = []
        if method == "brecq" {
            var export = try DSGCommand.parseAsRoot(["export", "--output", folder.file("m.onnx").path])
            try export.run()
            model = ["--model", folder.file("m.onnx").path]
        }
        let arguments =
            [
                "quantize", "--images", folder.file("images").path, "--samples",
                folder.file("samples.safetensors").path, "--weight-bits", "3", "--activation-bits", "4",
                "--reconstruction", method, "--reconstruction-iterations", "2",
                "--checkpoint", folder.file("rc.safetensors").path, "--output", folder.file("q.onnx").path,
            ] + model
        var first = try DSGCommand.parseAsRoot(arguments)
        try first.run()
        let written = try Data(contentsOf: folder.file("q.onnx"))
        let saved = try Safetensors.read(folder.file("rc.safetensors")).tensors
        #expect(saved.filter { $0.name.hasSuffix(".weight") }.count == 22)
        #expect(saved.filter { $0.name.hasSuffix(".range") }.count == (method == "brecq" ? 19 : 0))
        var again = try DSGCommand.parseAsRoot(arguments)
        try again.run()
        #expect(try Data(contentsOf: folder.file("q.onnx")) == written)
    }

    @Test func manyClassesAreSummarised() {
        #expect(GenerateCommand.classCounts([2, 0, 1]) == "2 0 1")
        var counts = [Int](repeating: 0, count: 1000)
        (counts[7], counts[42], counts[999]) = (30, 1, 1)
        #expect(GenerateCommand.classCounts(counts) == "3 of 1000 (most: class 7 × 30, class 42 × 1, class 999 × 1)")
    }
}
