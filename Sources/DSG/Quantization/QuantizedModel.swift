import DSGCore
import Foundation

/// A quantized model: the original graph with fake-quantization nodes after every ReLU, ReLU6 and clip and weights
/// replaced by their quantized values. It evaluates, saves and loads like any model.
public struct QuantizedModel: Sendable {
    /// The graph with its fake-quantization nodes (`<activation>.quant`, range tensor `<activation>.quant.range`)
    /// and quantize-dequantized weights, in Float32: it runs on any executor like the float model.
    public let model: Model
    /// How it was quantized; saved with it.
    public let configuration: PTQConfiguration

    /// The calibrated range of every quantized activation, in graph order, named by the activation node it
    /// follows (`stage1.block0.relu1`).
    public var activationRanges: [(activation: String, low: Float, high: Float)] {
        model.nodes.compactMap { node in
            guard node.op is FakeQuantOp, let range = try? model.tensor(named: node.name + ".range") else { return nil }
            return (PTQCalibrator.activationName(ofQuantNode: node), range[0], range[1])
        }
    }

    /// Writes the weights and activation ranges (safetensors) with the configuration in the metadata.
    public func save(to url: URL) throws {
        try Safetensors.write(
            Safetensors.Contents(tensors: model.stateDict, metadata: ["ptq": try configuration.metadataJSON()]), to: url
        )
    }

    /// Loads a quantized model saved by ``save(to:)`` for the floating-point `architecture` it was made from.
    public static func load(from url: URL, architecture: Model) throws -> QuantizedModel {
        let contents = try Safetensors.read(url)
        guard
            let settings = contents.metadata["ptq"].flatMap({
                try? JSONDecoder().decode(PTQConfiguration.self, from: Data($0.utf8))
            })
        else {
            throw SafetensorsError.badEntry(
                file: url.lastPathComponent, tensor: "__metadata__",
                reason: "no quantization settings (\"ptq\"): not a quantized model")
        }
        let base = settings.foldBatchNorm ? try BatchNormFolding.fold(architecture) : architecture
        let model = try PTQCalibrator.withFakeQuantization(base, bits: settings.activationBits)
        try model.load(contents, file: url.lastPathComponent)
        return QuantizedModel(model: model, configuration: settings)
    }
}
