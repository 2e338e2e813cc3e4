import DSGCore
import Foundation

/// Post-training quantization from calibration samples (synthetic or real): per-output-channel asymmetric
/// weights, per-tensor asymmetric activations after every ReLU, ReLU6 and clip, BatchNorm kept in Float32 (Docs/DSG.md §8).
public struct PTQCalibrator: Sendable {
    /// The bit-widths and range estimates every ``quantize(_:calibration:)`` call uses.
    public let configuration: PTQConfiguration

    /// A calibrator for `configuration`; throws if it is impossible (``PTQConfiguration/validate()``).
    public init(configuration: PTQConfiguration) throws(QuantizationError) {
        try configuration.validate()
        self.configuration = configuration
    }

    /// How far reconstruction (``PTQConfiguration/reconstruction``) has come: the block (a layer, for AdaRound),
    /// its index among the blocks (from 0), the step within it, and that step's loss.
    public struct ReconstructionProgress: Sendable {
        /// The block being learned, its index among the blocks (from 0), and their number.
        public let block: String, blockIndex: Int, blocks: Int
        /// Steps done in this block (from 1) and the steps per block.
        public let iteration: Int, iterations: Int
        /// The last step's loss on its batch: the reconstruction error plus the weighted regulariser.
        public let loss: Double
        /// Steps done in all blocks so far (a finished block skipped on resuming counts as done).
        public var stepsDone: Int { blockIndex * iterations + iteration }
        /// Steps in all blocks.
        public var stepsTotal: Int { blocks * iterations }
    }

    /// Quantizes a copy of `model` (the original is left alone), calibrating activation ranges on `samples`
    /// (`[N, C, H, W]` in the model's input space). With reconstruction, `progress` hears after every step, and
    /// `checkpoint` (when given) is written after every block and read first: a killed run continues at the block
    /// it was in, and a checkpoint of another model, setting or calibration set is refused. With `group`, every
    /// process of it makes the same call, the reconstruction steps' batches are shared among them (Docs/DSG.md
    /// section 8), every process ends with the same model, and rank 0 writes the checkpoint.
    public func quantize(
        _ model: Model, calibration samples: Tensor, checkpoint: URL? = nil, group: DataParallelGroup? = nil,
        progress: ((ReconstructionProgress) -> Void)? = nil
    ) throws -> QuantizedModel {
        let sample = model.inputs[0].shape
        guard samples.shape.rank == sample.rank + 1, Array(samples.shape.dimensions.dropFirst()) == sample.dimensions
        else {
            throw QuantizationError.calibrationShape(expected: sample, got: samples.shape)
        }
        guard samples.shape[0] > 0 else { throw QuantizationError.noCalibrationSamples }
        let integer = configuration.integerKernels
        let model = configuration.foldBatchNorm || integer ? try BatchNormFolding.fold(model) : model
        let ranges = try calibrateActivations(model, samples)
        let quantized = try Self.withFakeQuantization(
            model, bits: configuration.activationBits, integerKernels: integer)
        for (name, range) in ranges {
            try quantized.setTensor(named: name + Self.quantSuffix + ".range", to: Tensor(shape: [2], scalars: range))
        }
        var weights = try quantizeWeights(quantized)
        if let settings = configuration.reconstruction {
            try reconstruct(
                quantized, weights, float: model, samples: samples, settings: settings, checkpoint: checkpoint,
                group: group, progress: progress)
        }
        if integer { weights = try Self.quantizeBiases(quantized, weights) }
        return QuantizedModel(model: quantized, configuration: configuration, weights: weights)
    }

    /// What a fake-quantization node's name adds to the name of the activation it follows.
    static let quantSuffix = ".quant"

    /// The activation a fake-quantization node follows (`relu1` for `relu1.quant`).
    static func activationName(ofQuantNode node: Node) -> String { String(node.name.dropLast(quantSuffix.count)) }

    /// `model` with a `FakeQuantOp` named `<node>.quant` after every node ``quantizedOutputs(of:integerKernels:)``
    /// names.
    static func withFakeQuantization(_ model: Model, bits: Int, integerKernels: Bool = false) throws(GraphError)
        -> Model
    {
        let quantized = quantizedOutputs(of: model, integerKernels: integerKernels)
        return try model.inserting { node in
            quantized.contains(node.name) ? (FakeQuantOp(bits: bits), node.name + quantSuffix) : nil
        }
    }

    /// The nodes whose outputs are quantized: every ReLU, ReLU6 and clip, and with `integerKernels` also every
    /// convolution and residual sum that is not the only input of one of those, in graph order: a convolution
    /// that feeds a sum (ResNet's second convolution, MobileNet's projection), and a sum that feeds the next block
    /// directly (MobileNet's and EfficientNet's, which no activation follows), so that every convolution and sum
    /// reads and writes quantized values and fuses into an integer operator.
    static func quantizedOutputs(of model: Model, integerKernels: Bool) -> [String] {
        var readers: [Int: [Node]] = [:]
        for node in model.nodes { for input in node.inputs { readers[input.index, default: []].append(node) } }
        let outputs = Set(model.outputs)
        return model.nodes.filter { node in
            if isQuantizedActivation(node) { return true }
            // A convolution whose output is the model's (a fully convolutional head's logits) stays Float32.
            guard integerKernels, node.op is Conv2dOp || node.op is AddOp, !outputs.contains(node.output) else {
                return false
            }
            let next = readers[node.output.index] ?? []
            return !(next.count == 1 && isQuantizedActivation(next[0]))
        }.map(\.name)
    }

    /// The nodes whose weights PTQ and QAT quantize (every convolution and linear layer) and the activations
    /// they quantize (every ReLU, ReLU6 and clip output), in graph order.
    public static func quantizedNodes(of model: Model) -> (weights: [Node], activations: [Node]) {
        (model.nodes.filter(isQuantizedWeight), model.nodes.filter(isQuantizedActivation))
    }

    static func isQuantizedWeight(_ node: Node) -> Bool { node.op is Conv2dOp || node.op is LinearOp }

    static func isQuantizedActivation(_ node: Node) -> Bool {
        guard let op = node.op as? ActivationOp else { return false }
        switch op.activation {
        case .relu, .relu6, .clip: return true
        default: return false
        }
    }

    // MARK: - Weights

    /// Replaces nearest rounding by learned rounding (and with BRECQ and QDrop the calibrated activation ranges by
    /// learned ones), block by block in graph order: each block's inputs come from `quantized` as it stands (every
    /// block before it already learned), its targets from `float`, and its weights start from the float ones, on
    /// the quantizers of `records`.
    private func reconstruct(
        _ quantized: Model, _ records: [WeightQuantization], float: Model, samples: Tensor,
        settings: ReconstructionSettings, checkpoint: URL?, group: DataParallelGroup?,
        progress: ((ReconstructionProgress) -> Void)?
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let identity = [
            "format": Self.checkpointFormat, "ptq": String(decoding: try encoder.encode(configuration), as: UTF8.self),
            "model": float.fingerprint, "samples": Model.fingerprint(of: [samples]),
        ]
        var finished: [(name: String, tensor: Tensor)] = []
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let contents = try Safetensors.read(checkpoint)
            guard identity.allSatisfy({ contents.metadata[$0.key] == $0.value }) else {
                throw QuantizationError.invalidReconstruction(
                    "\(checkpoint.lastPathComponent) belongs to another model, setting or calibration set")
            }
            for (name, tensor) in contents.tensors { try quantized.setTensor(named: name, to: tensor) }
            finished = contents.tensors
        }
        let quantizers = Dictionary(uniqueKeysWithValues: records.map { ($0.layer, $0.quantizers) })
        // The learned result replaces nearest rounding and the calibrated ranges even where it is worse on the
        // calibration images, as in AdaRound's, BRECQ's and QDrop's code.
        let blocks = try BlockReconstruction.units(
            of: quantized, method: settings.method, layers: Set(quantizers.keys))
        for (k, block) in blocks.enumerated() {
            // What the block learns, by tensor name; a block with nothing to learn is skipped, a finished one too.
            let learned = quantized.nodes[block.nodes].flatMap { node -> [String] in
                if quantizers[node.name] != nil { return [node.name + ".weight"] }
                return settings.learnsSteps && node.op is FakeQuantOp ? [node.name + ".range"] : []
            }
            guard !learned.isEmpty, !learned.allSatisfy({ name in finished.contains { $0.name == name } }) else {
                continue
            }
            let inputs = try Self.values(
                of: block.input, in: quantized, on: samples, batchSize: configuration.batchSize)
            let targets = try Self.values(
                of: Self.floatValue(of: block.output, in: quantized, float: float), in: float, on: samples,
                batchSize: configuration.batchSize)
            let result = try BlockReconstruction.reconstruct(
                block, of: quantized, floatWeights: float, quantizers: quantizers, inputs: inputs, targets: targets,
                settings: settings, seed: UInt64(k), group: group
            ) { iteration, loss in
                progress?(
                    ReconstructionProgress(
                        block: block.name, blockIndex: k, blocks: blocks.count, iteration: iteration,
                        iterations: settings.rounding.iterations, loss: loss))
            }
            for (layer, weights) in result.weights.sorted(by: { $0.key < $1.key }) {
                try quantized.setTensor(named: layer + ".weight", to: weights)
                finished.append((layer + ".weight", weights))
            }
            for (node, range) in result.ranges.sorted(by: { $0.key < $1.key }) {
                let tensor = Tensor(shape: [2], scalars: range)
                try quantized.setTensor(named: node + ".range", to: tensor)
                finished.append((node + ".range", tensor))
            }
            // Every process learned the same; one writes it.
            if let checkpoint, (group?.rank ?? 0) == 0 {
                try Safetensors.write(Safetensors.Contents(tensors: finished, metadata: identity), to: checkpoint)
            }
        }
    }

    /// The float model's value that `value` of the quantized model stands for: the same node's output, or for a
    /// quantization node the activation it follows.
    static func floatValue(of value: ValueID, in quantized: Model, float: Model) throws -> ValueID {
        guard let node = quantized.node(producing: value) else { return value }
        let name = node.op is FakeQuantOp ? activationName(ofQuantNode: node) : node.name
        guard let original = float.nodes.first(where: { $0.name == name }) else {
            throw QuantizationError.invalidReconstruction("\(name) is not in the float model")
        }
        return original.output
    }

    /// The `format` of a reconstruction checkpoint: the learned weights and activation ranges of the blocks
    /// finished so far.
    static let checkpointFormat = "dsg-reconstruction-checkpoint-2"

    /// The values `value` takes in `model` on every sample, `[N] + its shape`.
    static func values(of value: ValueID, in model: Model, on samples: Tensor, batchSize: Int) throws -> Tensor {
        let shape = model.shape(of: value), n = samples.shape[0]
        var scalars = [Float](repeating: 0, count: n * shape.elementCount)
        try BatchedInference(model: model, batchSize: min(batchSize, n)).forEachBatch(of: samples) { executor, batch in
            executor.withValue(value) { v in
                for i in 0..<(batch.count * shape.elementCount) {
                    scalars[batch.lowerBound * shape.elementCount + i] = v[i]
                }
            }
        }
        return Tensor(shape: shape.batched(n), scalars: scalars)
    }

    /// Quantizes every weight of `model` in place and returns the quantizers used.
    private func quantizeWeights(_ model: Model) throws -> [WeightQuantization] {
        let layers = model.nodes.filter(Self.isQuantizedWeight)
        var records: [WeightQuantization] = []
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
            let size = weight.elementCount / weight.shape[0]
            let quantizers = weight.withUnsafeMutableBufferPointer { w in
                let quantizers = UniformQuantizer.quantizers(ofRows: w, size: size) { weightQuantizer($0, bits: bits) }
                UniformQuantizer.apply(quantizers, toRows: w, size: size)
                return quantizers
            }
            try model.setTensor(named: name, to: weight)
            records.append(WeightQuantization(layer: node.name, bits: bits, quantizers: quantizers))
        }
        return records
    }

    /// The quantizer of one output channel's weights: its extremes, or with `.mse` those extremes shrunk
    /// towards zero by the factor (1, 0.99, ..., 0.5) with the least squared error. For integer kernels the range
    /// always holds zero: their weight zero point is an INT8 (QLinearConv refuses the INT32 levels a range without
    /// zero needs), and a depthwise 3x3 kernel with BatchNorm folded in often has nine weights of one sign.
    private func weightQuantizer(_ row: UnsafeMutableBufferPointer<Float>, bits: Int) -> UniformQuantizer {
        var low = row.min() ?? 0, high = row.max() ?? 0
        if configuration.integerKernels { (low, high) = (min(low, 0), max(high, 0)) }
        switch configuration.weightRange {
        case .minMax: return UniformQuantizer(bits: bits, low: low, high: high)
        case .symmetric:
            // Step m / (2^(k−1) − 1): ±m are the levels ±(2^(k−1) − 1) and the zero point is exactly 0 (the
            // range's low end is the unused level −2^(k−1)). An all-zero channel (a pruned filter, or a BatchNorm
            // scale of 0 folded in) keeps a tiny m: m = 0 would give the degenerate zero point 2^(k−1), and one such
            // channel sends onnxruntime's whole layer off its symmetric kernels (25x slower, on EfficientNet).
            let m = max(-low, high, 1e-8), h = Float(1 << (bits - 1))
            return UniformQuantizer(bits: bits, low: -m * h / (h - 1), high: m)
        case .mse: break
        }
        let factors = (0...50).map { 1 - Float($0) * 0.01 }
        let range = UniformQuantizer.leastSquaredErrorRange(
            row, bits: bits, candidates: factors.map { (low: low * $0, high: high * $0) })
        return UniformQuantizer(bits: bits, low: range.low, high: range.high)
    }

    /// Rounds the bias of every quantized layer whose input is quantized to the integer grid of input step ×
    /// weight step per output channel (what an integer kernel adds to its integer sums), and records those steps.
    private static func quantizeBiases(_ model: Model, _ weights: [WeightQuantization]) throws -> [WeightQuantization] {
        try weights.map { record in
            guard let node = model.nodes.first(where: { $0.name == record.layer }),
                let input = quantizedSource(of: node.inputs[0], in: model), let fakeQuant = input.op as? FakeQuantOp,
                let bias = try? model.tensor(named: record.layer + ".bias")
            else { return record }
            let range = try model.tensor(named: input.name + ".range")
            let inputStep = UniformQuantizer(bits: fakeQuant.bits, low: range[0], high: range[1]).stepSize
            let steps = record.quantizers.map { inputStep * $0.stepSize }
            // A channel of (near) zero weights has a tiny step that no INT32 bias reaches: the bias stays Float32.
            guard zip(bias.scalars, steps).allSatisfy({ $1.isNormal && abs($0 / $1) < 0x1p30 }) else { return record }
            let rounded = bias.scalars.enumerated().map { o, b in (b / steps[o]).rounded(.toNearestOrEven) * steps[o] }
            try model.setTensor(named: record.layer + ".bias", to: Tensor(shape: bias.shape, scalars: rounded))
            return WeightQuantization(
                layer: record.layer, bits: record.bits, quantizers: record.quantizers, biasSteps: steps)
        }
    }

    /// The fake-quantization node whose grid `value` lies on: the node producing it, or before max pooling and
    /// reshapes, which keep values on their grid; nil when the value is not quantized.
    static func quantizedSource(of value: ValueID, in model: Model) -> Node? {
        var node = model.node(producing: value)
        while let n = node, n.op is MaxPool2dOp || n.op is ReshapeOp { node = model.node(producing: n.inputs[0]) }
        return node?.op is FakeQuantOp ? node : nil
    }

    // MARK: - Activations

    /// The range of every quantized output, by node name, from the float model's outputs on `samples`.
    private func calibrateActivations(_ model: Model, _ samples: Tensor) throws -> [(String, [Float])] {
        let names = Set(Self.quantizedOutputs(of: model, integerKernels: configuration.integerKernels))
        let activations = model.nodes.filter { names.contains($0.name) }
        var ranges = activations.map { _ in (low: Float(0), high: Float(0)) }  // running extremes start at 0
        let batches = try BatchedInference(model: model, batchSize: min(configuration.batchSize, samples.shape[0]))
        try batches.forEachBatch(of: samples) { executor, batch in
            for (k, node) in activations.enumerated() {
                executor.withValue(node.output) { values in
                    let (low, high) = batchRange(values, samples: batch.count)
                    ranges[k] = (min(ranges[k].low, low), max(ranges[k].high, high))
                }
            }
        }
        if configuration.activationCalibration == .mse {
            ranges = try leastSquaresRanges(activations, within: ranges, batches: batches, samples: samples)
        }
        return zip(activations, ranges).map { ($0.name, [$1.low, $1.high]) }
    }

    /// `.mse`: for each activation, of the ranges from its extremes with the upper end lowered in 80 steps of 1%
    /// (activations after a ReLU start at 0, so only the upper end is searched), the one whose squared error summed
    /// over every calibration sample is least: a second pass, which adds up each batch's errors.
    private func leastSquaresRanges(
        _ activations: [Node], within extremes: [(low: Float, high: Float)], batches: BatchedInference,
        samples: Tensor
    ) throws -> [(low: Float, high: Float)] {
        let candidates = extremes.map { e in
            (0..<80).map { (low: e.low, high: e.high - Float($0) * 0.01 * (e.high - e.low)) }
        }
        var errors = candidates.map { [Double](repeating: 0, count: $0.count) }
        try batches.forEachBatch(of: samples) { executor, _ in
            for (k, node) in activations.enumerated() {
                executor.withValue(node.output) { values in
                    let batchErrors = UniformQuantizer.squaredErrors(
                        values, bits: configuration.activationBits, candidates: candidates[k])
                    for c in batchErrors.indices { errors[k][c] += batchErrors[c] }
                }
            }
        }
        return candidates.indices.map { candidates[$0][UniformQuantizer.leastIndex(errors[$0])] }
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
            // The extremes, from which ``leastSquaresRanges`` searches over all batches.
            return (values.min() ?? 0, values.max() ?? 0)
        }
    }
}
