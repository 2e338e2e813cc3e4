import ArgumentParser
import DSG
import Foundation

extension PTQConfiguration.ActivationCalibration: ExpressibleByArgument {}
extension PTQConfiguration.WeightRange: ExpressibleByArgument {}
extension PTQConfiguration.EdgeLayers: ExpressibleByArgument {}

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Post-training quantization from a sample file, and accuracy before and after.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: ArgumentHelp("Calibration samples made by `dsg generate`.", valueName: "path"))
    var samples: String

    @Option(help: "Weight bit-width, 2 to 8.")
    var weightBits = 4

    @Option(help: "Activation bit-width, 2 to 8.")
    var activationBits = 4

    @Option(help: "Activation range estimate: minMax, ema, percentile or mse.")
    var calibration: PTQConfiguration.ActivationCalibration = .ema

    @Option(help: "Weight range per output channel: minMax or mse.")
    var weightRange: PTQConfiguration.WeightRange = .minMax

    @Option(help: "First convolution and last linear layer: quantize, fullPrecision or eightBit.")
    var edgeLayers: PTQConfiguration.EdgeLayers = .quantize

    @Flag(help: "Fold each BatchNorm into the convolution before it, then quantize (DSG keeps BatchNorm in Float32).")
    var foldBatchNorm = false

    @Option(help: ArgumentHelp("Where to write the quantized model (safetensors).", valueName: "path"))
    var output = "quantized.safetensors"

    func validate() throws {
        for (bits, name) in [(weightBits, "--weight-bits"), (activationBits, "--activation-bits")] where !(2...8).contains(bits) {
            throw ValidationError("\(name) must be between 2 and 8.")
        }
    }

    func run() throws {
        try reportingErrors {
            let model = try modelOptions.load()
            let calibrationSet = try SampleSet.load(from: URL(fileURLWithPath: samples))
            var configuration = PTQConfiguration(weightBits: weightBits, activationBits: activationBits)
            configuration.activationCalibration = calibration
            configuration.weightRange = weightRange
            configuration.edgeLayers = edgeLayers
            configuration.foldBatchNorm = foldBatchNorm
            let quantized = try PTQCalibrator(configuration: configuration).quantize(model, calibration: calibrationSet.images)
            try quantized.save(to: URL(fileURLWithPath: output))
            let test = try FashionMNIST.load(.test, from: dataOptions.directory)
            let line = ProgressLine()
            let fp32 = try Evaluation.accuracy(of: model, on: test) { line.update("FP32: \($0)/\(test.count)") }
            let q = try Evaluation.accuracy(of: quantized.model, on: test) { line.update("\(configuration.label): \($0)/\(test.count)") }
            line.finish()
            say(String(format: "FP32 %.2f%%  %@ %.2f%%  (%d %@ calibration samples; quantized model written to %@)",
                100 * fp32, configuration.label, 100 * q, calibrationSet.count, calibrationSet.options.preset.rawValue, output))
        }
    }
}
