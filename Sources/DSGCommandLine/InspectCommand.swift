import ArgumentParser
import DSG
import Foundation

/// `dsg inspect`: what a model file holds and what DSG and quantization will do with it, before a long run.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's layers, parameters, input shape and the BatchNorm layers DSG reads.")

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        try reportingErrors {
            let model = try modelOptions.load()
            say(InspectCommand.report(model, name: modelOptions.name))
        }
    }

    /// The printed report: input and output, parameter count, every node, the BatchNorm layers DSG aligns and
    /// what quantization touches.
    static func report(_ model: Model, name: String) -> String {
        let parameters = model.tensors.filter { $0.role == .parameter }
        var lines = ["model: \(name)"]
        lines.append(
            "input: " + model.inputs.map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
                + "; output: \(model.outputs.map { model.shape(of: $0) }.map(\.description).joined(separator: ", "))")
        lines.append(
            "parameters: \(model.parameterCount) in \(parameters.count) tensors; "
                + "buffers: \(model.tensors.count - parameters.count) tensors")
        var kinds: [String: Int] = [:]
        for node in model.nodes { kinds[node.op.kind, default: 0] += 1 }
        lines.append(
            "nodes: \(model.nodes.count) ("
                + kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
        for node in model.nodes {
            let owned = node.tensorIndices.map { model.tensors[$0] }.filter { $0.role == .parameter }
            let count = owned.reduce(0) { $0 + $1.tensor.elementCount }
            lines.append(
                "  \(node.name)  \(node.op.kind)  -> \(model.shape(of: node.output))"
                    + (count > 0 ? "  \(count) parameters" : ""))
        }
        let layers = model.batchNormLayers
        lines.append(
            "BatchNorm layers DSG aligns (per-sample statistics of each one's input against its running mean and "
                + "variance): \(layers.count)")
        for layer in layers {
            lines.append("  \(layer.name)  \(layer.channels) channels, input \(model.shape(of: layer.input))")
        }
        let quantized = PTQCalibrator.quantizedNodes(of: model)
        lines.append(
            "quantization: \(quantized.weights.count) convolution and linear weights (per output channel), "
                + "\(quantized.activations.count) activations after ReLU, ReLU6 or a clip (per tensor)")
        if layers.isEmpty { lines.append("warning: no BatchNorm layer, so DSG cannot synthesise samples for it") }
        return lines.joined(separator: "\n")
    }
}
