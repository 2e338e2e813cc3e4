import DSGCore

/// The low-bit student of quantization-aware training (Docs/DSG.md §10.4): a copy of the teacher with a
/// `FakeQuantOp` after every ReLU, ReLU6 and clip and every convolution and linear weight quantized per output channel
/// (min/max) on each forward pass.
///
/// The float weights stay the trained ones: `quantizeWeights()` swaps the quantized values in for a forward and
/// backward pass and `restoreWeights()` puts the float values back before the optimiser steps, so the gradient
/// taken at the quantized weights updates the float weights unchanged (the straight-through estimator).
/// Activation ranges follow an exponential moving average (β = 0.9) of each batch's extremes (`activationRange`)
/// while the trainer tracks them, and are frozen otherwise.
final class QATStudent {
    let model: Model
    let weightBits: Int
    let activationRange: QATConfiguration.ActivationRange
    /// Positions of the quantized weights in the model's tensors, and their float values while the quantized
    /// ones are swapped in (buffers made once).
    private let weights: [Int]
    /// The layers owning them.
    private let weightLayers: [String]
    private var floatWeights: [[Float]]
    /// The activations the fake-quantization nodes read, their nodes' names (the same in the teacher) and the
    /// positions of the nodes' range tensors.
    private let activations: [ValueID], activationNames: [String], rangeTensors: [Int]
    /// Running (low, high) per quantized activation; nil until the first batch.
    private(set) var ranges: [(low: Float, high: Float)]?
    /// In a data-parallel run, the processes sharing each batch and its size: a batch's extremes are then the
    /// whole batch's.
    private let group: DataParallelGroup?, batch: Int
    /// One batch's extremes: the lows (negated for `.batchExtremes`, so one maximum finds both) and the highs.
    private var batchExtremes: [Float]

    init(
        teacher: Model, weightBits: Int, activationBits: Int, activationRange: QATConfiguration.ActivationRange,
        group: DataParallelGroup? = nil, batch: Int
    ) throws {
        model = try PTQCalibrator.withFakeQuantization(teacher.copy(), bits: activationBits)
        self.weightBits = weightBits
        self.activationRange = activationRange
        let model = model
        weightLayers = model.nodes.filter(PTQCalibrator.isQuantizedWeight).map(\.name)
        weights = try weightLayers.map { try model.tensorPosition(named: $0 + ".weight") }
        floatWeights = weights.map { [Float](repeating: 0, count: model.tensors[$0].tensor.elementCount) }
        let quantNodes = model.nodes.filter { $0.op is FakeQuantOp }
        activations = quantNodes.map { $0.inputs[0] }
        activationNames = quantNodes.map(PTQCalibrator.activationName(ofQuantNode:))
        rangeTensors = try quantNodes.map { try model.tensorPosition(named: $0.name + ".range") }
        (self.group, self.batch) = (group, batch)
        batchExtremes = Array(repeating: 0, count: 2 * quantNodes.count)
    }

    /// Replaces every weight by its per-output-channel quantized value, keeping the float values.
    func quantizeWeights() {
        for (k, i) in weights.enumerated() {
            let shape = model.tensors[i].tensor.shape
            let rows = shape[0], size = shape.elementCount / rows
            let w = model.mutablePointer(tensor: i)
            floatWeights[k].withUnsafeMutableBufferPointer {
                $0.baseAddress!.update(from: w, count: shape.elementCount)
            }
            UniformQuantizer.quantizeRows(w, rows: rows, size: size) {
                UniformQuantizer(bits: weightBits, low: $0.min() ?? 0, high: $0.max() ?? 0)
            }
        }
    }

    /// Puts the float weights back (after backward, before the optimiser step).
    func restoreWeights() {
        for (k, i) in weights.enumerated() {
            floatWeights[k].withUnsafeBufferPointer {
                model.mutablePointer(tensor: i).update(from: $0.baseAddress!, count: $0.count)
            }
        }
    }

    /// Sets the ranges to the extremes of the float teacher's activations when there are none yet, so the first
    /// quantized pass has sensible ranges. `teacher` has just run forward on the student's batch.
    func initializeRanges(from teacher: GraphExecutor) throws {
        guard ranges == nil else { return }
        let values = try activationNames.map { name in
            guard let node = teacher.model.nodes.first(where: { $0.name == name }) else {
                throw GraphError.unknownTensor(name)
            }
            return node.output
        }
        measureExtremes(teacher, values)
        ranges = values.indices.map { extremes(at: $0) }
        writeRanges()
    }

    /// Moves every range toward this batch's extremes: `r ← 0.9 r + 0.1 x` (read after a forward pass).
    func trackRanges(_ executor: GraphExecutor) {
        guard ranges != nil else { return }
        measureExtremes(executor, activations)
        for k in activations.indices {
            let (low, high) = extremes(at: k)
            // In place: a copy of the array to change would allocate at every iteration.
            ranges![k] = (0.9 * ranges![k].low + 0.1 * low, 0.9 * ranges![k].high + 0.1 * high)
        }
        writeRanges()
    }

    /// Puts the batch's extremes of each of `values` (as `activationRange` estimates them) into `batchExtremes`,
    /// over the whole batch in a data-parallel run.
    private func measureExtremes(_ executor: GraphExecutor, _ values: [ValueID]) {
        let k = values.count, n = executor.batchSize
        // The share's part of the whole batch's mean of sample extremes (1 without a group).
        let part = Float(n) / Float(batch)
        for (i, value) in values.enumerated() {
            executor.withValue(value) { x in
                switch activationRange {
                case .batchExtremes:
                    (batchExtremes[i], batchExtremes[k + i]) = (-(x.min() ?? 0), x.max() ?? 0)
                case .meanSampleExtremes:
                    let (low, high) = PTQCalibrator.meanSampleExtremes(x, samples: n)
                    (batchExtremes[i], batchExtremes[k + i]) = (part * low, part * high)
                }
            }
        }
        guard let group else { return }
        batchExtremes.withUnsafeMutableBufferPointer {
            switch activationRange {
            case .batchExtremes: group.maximum($0)
            case .meanSampleExtremes: group.sum($0)
            }
        }
    }

    /// The extremes of the `k`th value measured last.
    private func extremes(at k: Int) -> (low: Float, high: Float) {
        let high = batchExtremes[batchExtremes.count / 2 + k]
        return (activationRange == .batchExtremes ? -batchExtremes[k] : batchExtremes[k], high)
    }

    /// Restores ranges saved in a checkpoint (the model's range tensors already hold them).
    func adoptSavedRanges() {
        ranges = rangeTensors.map {
            let r = model.mutablePointer(tensor: $0)
            return (r[0], r[1])
        }
    }

    private func writeRanges() {
        guard let ranges else { return }
        for (i, r) in zip(rangeTensors, ranges) {
            let p = model.mutablePointer(tensor: i)
            (p[0], p[1]) = (r.low, r.high)
        }
    }

    /// A copy with quantized weights, the deployable result (it saves and loads as a `QuantizedModel`), with
    /// the quantizers ``quantizeWeights()`` uses.
    func exported(activationBits: Int) -> QuantizedModel {
        let copy = model.copy()
        let records = zip(weightLayers, weights).map { layer, i in
            let shape = copy.tensors[i].tensor.shape, size = shape.elementCount / shape[0]
            let w = UnsafeMutableBufferPointer(start: copy.mutablePointer(tensor: i), count: shape.elementCount)
            // The quantizers quantizeWeights() applies at every step.
            let quantizers = UniformQuantizer.quantizers(ofRows: w, size: size) {
                UniformQuantizer(bits: weightBits, low: $0.min() ?? 0, high: $0.max() ?? 0)
            }
            UniformQuantizer.apply(quantizers, toRows: w, size: size)
            return WeightQuantization(layer: layer, bits: weightBits, quantizers: quantizers)
        }
        return QuantizedModel(
            model: copy, configuration: PTQConfiguration(weightBits: weightBits, activationBits: activationBits),
            weights: records)
    }
}
