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
    /// Every quantized weight's per-channel quantizers, in graph order (a layer kept in Float32 has none);
    /// saved with the model. Empty for a file saved before they were kept.
    public let weights: [WeightQuantization]

    /// A quantized model of `model`'s graph, quantized by `configuration`, its weights on `weights`' grids.
    public init(model: Model, configuration: PTQConfiguration, weights: [WeightQuantization]) {
        (self.model, self.configuration, self.weights) = (model, configuration, weights)
    }

    /// Every activation quantizer, in graph order: the fake-quantization node, the node it follows and the range
    /// it holds now (read from the node's own tensor).
    public var activations: [ActivationQuantization] {
        model.nodes.compactMap { node in
            guard let op = node.op as? FakeQuantOp, let range = node.tensorIndices.first.map({ model.tensors[$0] })
            else { return nil }
            let activation = model.node(producing: node.inputs[0])?.name ?? model.inputs[node.inputs[0].index].name
            return ActivationQuantization(
                activation: activation, node: node.name, bits: op.bits, low: range.tensor[0], high: range.tensor[1])
        }
    }

    /// The metadata key of the weight quantizers (JSON).
    static let weightsKey = "weight_quantizers"

    /// Writes the weights and activation ranges (safetensors) with the configuration and the weight quantizers in
    /// the metadata.
    public func save(to url: URL) throws {
        // Sorted keys: the same model is the same file (Foundation's keyed containers have no fixed order).
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let quantizers = String(decoding: try encoder.encode(weights), as: UTF8.self)
        let metadata = ["ptq": try configuration.metadataJSON(), Self.weightsKey: quantizers]
        try Safetensors.write(Safetensors.Contents(tensors: model.stateDict, metadata: metadata), to: url)
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
        let base =
            settings.foldBatchNorm || settings.integerKernels ? try BatchNormFolding.fold(architecture) : architecture
        let integer = settings.integerKernels
        let model = try PTQCalibrator.withFakeQuantization(base, bits: settings.activationBits, integerKernels: integer)
        try model.load(contents, file: url.lastPathComponent)
        let weights = try contents.metadata[weightsKey].map { json in
            do { return try JSONDecoder().decode([WeightQuantization].self, from: Data(json.utf8)) } catch {
                throw SafetensorsError.badEntry(
                    file: url.lastPathComponent, tensor: "__metadata__",
                    reason: "unreadable weight quantizers (\(weightsKey))")
            }
        }
        return QuantizedModel(model: model, configuration: settings, weights: weights ?? [])
    }
}
