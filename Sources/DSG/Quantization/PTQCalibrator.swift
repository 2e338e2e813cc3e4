import DSGCore
import Foundation

/// Settings of post-training quantization (Docs/DSG.md §8).
public struct PTQConfiguration: Sendable, Codable, Equatable {
    public var weightBits = 4
    public var activationBits = 4

    /// How each output channel's weight range is chosen.
    public enum WeightRange: String, Sendable, Codable, CaseIterable {
        /// The channel's minimum and maximum.
        case minMax
        /// The minimum and maximum shrunk by the factor (1, 0.99, ..., 0.5) with the least squared error.
        case mse
    }

    /// How the range of each activation (after every ReLU / ReLU6) is estimated from the calibration samples.
    public enum ActivationCalibration: String, Sendable, Codable, CaseIterable {
        /// Running minimum and maximum over all batches (ZeroQ).
        case minMax
        /// The mean over samples of each sample's minimum and maximum, then the running extremes over batches.
        /// The official DSG code calls this `ema`, though it averages nothing over time; `"ema"` is still read
        /// (files and the command line) as this case.
        case meanSampleExtremes
        /// The 0.001% and 99.999% percentiles of each batch, then the running extremes.
        case percentile
        /// From the batch extremes, the upper end lowered in steps of 1% (80 tries) to the least squared
        /// quantization error; the last batch decides.
        case mse

        public init?(rawValue: String) {
            switch rawValue {
            case "minMax": self = .minMax
            case "meanSampleExtremes", "ema": self = .meanSampleExtremes
            case "percentile": self = .percentile
            case "mse": self = .mse
            default: return nil
            }
        }
    }

    /// What happens to the first convolution and the last linear layer.
    public enum EdgeLayers: String, Sendable, Codable, CaseIterable {
        /// Quantized like every other layer (ZeroQ and DSG).
        case quantize
        /// Kept in Float32.
        case fullPrecision
        /// Quantized to 8 bits whatever `weightBits` says.
        case eightBit
    }

    public var weightRange: WeightRange = .minMax
    public var activationCalibration: ActivationCalibration = .meanSampleExtremes
    public var edgeLayers: EdgeLayers = .quantize
    /// Fold each BatchNorm into the convolution before it, then quantize the folded weights (DSG keeps
    /// BatchNorm in Float32, so this is off by default).
    public var foldBatchNorm = false
    /// Calibration samples per forward pass.
    public var batchSize = 64

    public init(weightBits: Int = 4, activationBits: Int = 4) {
        (self.weightBits, self.activationBits) = (weightBits, activationBits)
    }

    /// "W4A4".
    public var label: String { "W\(weightBits)A\(activationBits)" }

    /// Checks the bit-widths (2 to 8) and the batch size.
    public func validate() throws(QuantizationError) {
        try UniformQuantizer.validate(weightBits, "weight")
        try UniformQuantizer.validate(activationBits, "activation")
        guard batchSize >= 1 else { throw .batchSize(batchSize) }
    }
}

/// A quantized model: the original graph with fake-quantization nodes after every ReLU / ReLU6 and weights
/// replaced by their quantized values. It evaluates, saves and loads like any model.
public struct QuantizedModel: Sendable {
    public let model: Model
    public let configuration: PTQConfiguration

    /// The calibrated range of every quantized activation, in graph order, named by the activation node it
    /// follows (`stage1.block0.relu1`).
    public var activationRanges: [(activation: String, low: Float, high: Float)] {
        model.nodes.compactMap { node in
            guard node.op is FakeQuantOp, let range = try? model.tensor(named: node.name + ".range") else { return nil }
            return (String(node.name.dropLast(PTQCalibrator.quantSuffix.count)), range[0], range[1])
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

/// Post-training quantization from calibration samples (synthetic or real): per-output-channel asymmetric
/// weights, per-tensor asymmetric activations after every ReLU / ReLU6, BatchNorm kept in Float32 (Docs/DSG.md §8).
public struct PTQCalibrator: Sendable {
    public let configuration: PTQConfiguration

    public init(configuration: PTQConfiguration) throws(QuantizationError) {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Quantizes a copy of `model` (the original is left alone), calibrating activation ranges on `samples`
    /// (`[N, C, H, W]` in the model's input space).
    public func quantize(_ model: Model, calibration samples: Tensor) throws -> QuantizedModel {
        let sample = model.inputs[0].shape
        guard samples.shape.rank == sample.rank + 1, Array(samples.shape.dimensions.dropFirst()) == sample.dimensions
        else {
            throw QuantizationError.calibrationShape(expected: sample, got: samples.shape)
        }
        guard samples.shape[0] > 0 else { throw QuantizationError.noCalibrationSamples }
        let model = configuration.foldBatchNorm ? try BatchNormFolding.fold(model) : model
        let ranges = try calibrateActivations(model, samples)
        let quantized = try Self.withFakeQuantization(model, bits: configuration.activationBits)
        for (name, range) in ranges {
            try quantized.setTensor(named: name + Self.quantSuffix + ".range", to: Tensor(shape: [2], scalars: range))
        }
        try quantizeWeights(quantized)
        return QuantizedModel(model: quantized, configuration: configuration)
    }

    /// What a fake-quantization node's name adds to the name of the activation it follows.
    static let quantSuffix = ".quant"

    /// `model` with a `FakeQuantOp` named `<activation>.quant` after every ReLU and ReLU6 node.
    static func withFakeQuantization(_ model: Model, bits: Int) throws(GraphError) -> Model {
        try model.inserting { node in
            isQuantizedActivation(node) ? (FakeQuantOp(bits: bits), node.name + quantSuffix) : nil
        }
    }

    static func isQuantizedActivation(_ node: Node) -> Bool {
        guard let op = node.op as? ActivationOp else { return false }
        return op.activation == .relu || op.activation == .relu6
    }

    // MARK: - Weights

    private func quantizeWeights(_ model: Model) throws {
        let layers = model.nodes.filter { $0.op is Conv2dOp || $0.op is LinearOp }
        for node in layers {
            var bits = configuration.weightBits
            let isEdge = node.name == layers.first?.name || node.name == layers.last?.name
            if isEdge {
                switch configuration.edgeLayers {
                case .quantize: break
                case .fullPrecision: continue
                case .eightBit: bits = 8
                }
            }
            let name = node.name + ".weight"
            var weight = try model.tensor(named: name)
            let rows = weight.shape[0], size = weight.elementCount / rows
            weight.withUnsafeMutableBufferPointer { w in
                UniformQuantizer.quantizeRows(w.baseAddress!, rows: rows, size: size) {
                    weightQuantizer($0, bits: bits)
                }
            }
            try model.setTensor(named: name, to: weight)
        }
    }

    private func weightQuantizer(_ row: UnsafeMutableBufferPointer<Float>, bits: Int) -> UniformQuantizer {
        let low = row.min() ?? 0, high = row.max() ?? 0
        guard configuration.weightRange == .mse else { return UniformQuantizer(bits: bits, low: low, high: high) }
        var best = UniformQuantizer(bits: bits, low: low, high: high), bestError = Double.infinity
        for step in 0...50 {
            let factor = 1 - Float(step) * 0.01
            let q = UniformQuantizer(bits: bits, low: low * factor, high: high * factor)
            let error = row.reduce(0.0) { $0 + Double((q($1) - $1) * (q($1) - $1)) }
            if error < bestError { (best, bestError) = (q, error) }
        }
        return best
    }

    // MARK: - Activations

    /// The range of every quantized activation, by node name, from the float model's outputs on `samples`.
    private func calibrateActivations(_ model: Model, _ samples: Tensor) throws -> [(String, [Float])] {
        let activations = model.nodes.filter(Self.isQuantizedActivation)
        var ranges = activations.map { _ in (low: Float(0), high: Float(0)) }  // running extremes start at 0
        let batches = try BatchedInference(model: model, batchSize: min(configuration.batchSize, samples.shape[0]))
        try batches.forEachBatch(of: samples) { executor, batch in
            for (k, node) in activations.enumerated() {
                executor.withValue(node.output) { values in
                    let (low, high) = batchRange(values, samples: batch.count)
                    if configuration.activationCalibration == .mse {
                        ranges[k] = (low, high)
                    } else {
                        ranges[k] = (min(ranges[k].low, low), max(ranges[k].high, high))
                    }
                }
            }
        }
        return zip(activations, ranges).map { ($0.name, [$1.low, $1.high]) }
    }

    /// The mean over `n` samples of each sample's minimum and maximum.
    static func meanSampleExtremes(_ values: UnsafeBufferPointer<Float>, samples n: Int) -> (low: Float, high: Float) {
        let per = values.count / n
        var low = 0.0, high = 0.0
        for s in 0..<n {
            let row = values[(s * per)..<((s + 1) * per)]
            low += Double(row.min() ?? 0)
            high += Double(row.max() ?? 0)
        }
        return (Float(low / Double(n)), Float(high / Double(n)))
    }

    /// One batch's estimate of an activation's range under the configured method.
    private func batchRange(_ values: UnsafeBufferPointer<Float>, samples n: Int) -> (Float, Float) {
        switch configuration.activationCalibration {
        case .minMax:
            return (values.min() ?? 0, values.max() ?? 0)
        case .meanSampleExtremes:
            return Self.meanSampleExtremes(values, samples: n)
        case .percentile:
            let sorted = values.sorted()
            return (
                Float(SlackMargins.quantile(sorted.map(Double.init), 0.00001)),
                Float(SlackMargins.quantile(sorted.map(Double.init), 0.99999))
            )
        case .mse:
            let low = values.min() ?? 0, high = values.max() ?? 0
            var best = (low, high), bestError = Double.infinity
            for i in 0..<80 {
                let top = high - Float(i) * 0.01 * (high - low)
                let q = UniformQuantizer(bits: configuration.activationBits, low: low, high: top)
                let error = values.reduce(0.0) { $0 + Double((q($1) - $1) * (q($1) - $1)) }
                if error < bestError { (best, bestError) = ((low, top), error) }
            }
            return best
        }
    }
}
