import DSG
import Foundation
import Testing

@testable import DSGONNX

/// The forms exporters write for padding, clipping, linear layers and biases, imported and evaluated: each
/// result is checked against the same arithmetic done here on the values of the graph before the node.
@Suite("ONNX padding, clips, MatMul and biases")
struct ONNXLayerFormTests {
    typealias B = ONNXBadInputTests

    /// `[2, 2, 4, 4]` values in [-1.5, 1.5).
    static let image = Tensor(shape: [2, 2, 4, 4], scalars: (0..<64).map { Float(($0 * 37) % 64) / 64 * 3 - 1.5 })

    /// The model's output for ``image``.
    static func run(_ model: Model) throws -> [Float] {
        let executor = try GraphExecutor(model: model, batchSize: 2, backward: false)
        try executor.forward([image], training: false)
        return executor.output().scalars
    }

    /// The BatchNorm output `b` of ``ONNXBadInputTests/model(tail:extra:opset:)``, `[2, 3, 4, 4]`.
    static func bnOutput() throws -> [Float] { try run(try B.load(B.model())) }

    static func float(_ name: String, _ dims: [Int64], _ values: [Float]) -> Onnx_TensorProto {
        var t = B.initializer(name, dims)
        t.floatData = values
        return t
    }

    @Test func tfSamePaddingPadsOneMorePixelAtTheEnd() throws {
        let b = try Self.bnOutput()
        // Opset 13: pads and the value as inputs, [N, C, H, W] begins then ends.
        let pad = B.model(
            tail: [B.node("Pad", ["b", "pads", "fill"], "y")],
            extra: [ONNXOperatorTests.int64("pads", [0, 0, 0, 1, 0, 0, 1, 2]), B.initializer("fill", [], value: -2)])
        let model = try B.load(pad)
        #expect(model.shape(of: model.outputs[0]) == [3, 5, 7])
        let expected = (0..<(6 * 5 * 7)).map { i -> Float in
            let (plane, row, column) = (i / 35, i / 7 % 5, i % 7)
            return row < 4 && (1...4).contains(column) ? b[plane * 16 + row * 4 + column - 1] : -2
        }
        #expect(try Self.run(model) == expected)
        // Opset 18 names the padded axes; opset 2 to 10 write pads and value as attributes.
        let axes = B.model(
            tail: [B.node("Pad", ["b", "pads", "", "axes"], "y")],
            extra: [ONNXOperatorTests.int64("pads", [0, 1, 1, 2]), ONNXOperatorTests.int64("axes", [-2, 3])],
            opset: 18)
        var attributes = B.model(tail: [B.node("Pad", ["b"], "y")], opset: 10)
        let pads = B.attribute("pads", ints: [0, 0, 0, 1, 0, 0, 1, 2])
        attributes.graph.node[2].attribute = [pads]
        for (form, m) in [("axes", axes), ("attributes", attributes)] {
            let pad = try #require(try B.load(m).nodes.last?.op as? PadOp)
            #expect([pad.top, pad.bottom, pad.left, pad.right] == [0, 1, 1, 2] && pad.value == 0, "\(form)")
        }
    }

    @Test func padsOtherThanConstantSpatialOnesAreRefused() throws {
        func refusal(_ pads: [Int64], mode: String? = nil) -> ONNXError? {
            var m = B.model(
                tail: [B.node("Pad", ["b", "pads"], "y")], extra: [ONNXOperatorTests.int64("pads", pads)])
            if let mode { m.graph.node[2].attribute = [B.attribute("mode", s: Data(mode.utf8))] }
            do {
                _ = try B.load(m)
                return nil
            } catch { return error as? ONNXError }
        }
        func refused(_ value: String) -> ONNXError {
            .unsupportedAttribute(node: "y", op: "Pad", attribute: "pads", value: value)
        }
        #expect(
            refusal([0, 1, 0, 0, 0, 0, 0, 0])
                == refused("[0, 1, 0, 0, 0, 0, 0, 0] (only the height and width are padded)"))
        #expect(refusal([0, 0, -1, 0, 0, 0, 0, 0]) == refused("[0, 0, -1, 0, 0, 0, 0, 0] (negative or too large)"))
        #expect(refusal([0, 0, 1, 1]) == refused("[0, 0, 1, 1] over axes [0, 1, 2, 3]"))
        var leftover = B.model(
            tail: [B.node("Pad", ["b", "pads"], "y")],
            extra: [ONNXOperatorTests.int64("pads", [0, 0, 1, 1, 0, 0, 1, 1])])
        leftover.graph.node[2].attribute = [B.attribute("pads", ints: [0, 0, 0, 0, 0, 0, 0, 0])]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Pad", attribute: "pads", value: "an attribute from opset 11 on")
        ) { try B.load(leftover) }
        #expect(
            refusal([0, 0, 1, 1, 0, 0, 1, 1], mode: "reflect")
                == .unsupportedAttribute(node: "y", op: "Pad", attribute: "mode", value: "reflect (only constant)"))
    }

    @Test func clipBoundsBecomeReLUReLU6TheIdentityOrAClip() throws {
        let b = try Self.bnOutput()
        func clip(_ low: Float?, _ high: Float?) -> Onnx_ModelProto {
            B.model(
                tail: [B.node("Clip", ["b", low == nil ? "" : "low", high == nil ? "" : "high"], "y")],
                extra: [B.initializer("low", [], value: low ?? 0), B.initializer("high", [], value: high ?? 0)])
        }
        let kinds = try [(0, 6), (0, nil), (nil, nil), (-1, 1.5), (nil, 0.5), (1, -1)].map { low, high in
            try B.load(clip(low, high)).nodes.map(\.op.kind).last ?? ""
        }
        #expect(kinds == ["ReLU6", "ReLU", "BatchNorm", "Hardtanh", "Hardtanh", "Hardtanh"])
        #expect(try Self.run(try B.load(clip(-0.25, 0.75))) == b.map { min(max($0, -0.25), 0.75) })
        // Opset 6 writes the bounds as attributes; a minimum above the maximum gives the maximum everywhere.
        var attributes = B.model(tail: [B.node("Clip", ["b"], "y")], opset: 6)
        var high = Onnx_AttributeProto()
        (high.name, high.f, high.type) = ("max", 0.5, .float)
        var low = high
        (low.name, low.f) = ("min", 1)
        attributes.graph.node[2].attribute = [low, high]
        attributes.graph.node[1].attribute = [B.attribute("is_test", i: 1)]
        #expect(try Self.run(try B.load(attributes)) == Array(repeating: 0.5, count: b.count))
    }

    /// `GlobalAveragePool`, `Flatten`, then the given nodes to the output `y` (a `[3]` feature vector first).
    static func head(_ nodes: [Onnx_NodeProto], _ extra: [Onnx_TensorProto], outputs: Int64 = 2) -> Onnx_ModelProto {
        var m = B.model(
            tail: [B.node("GlobalAveragePool", ["b"], "p"), B.node("Flatten", ["p"], "f")] + nodes, extra: extra)
        m.graph.output = [B.value("y", [nil, outputs])]
        return m
    }

    @Test func matMulAndAddOfAConstantAreALinearLayer() throws {
        let b = try Self.bnOutput()
        let features = (0..<2).map { n in
            (0..<3).map { c in b[(n * 3 + c) * 16..<(n * 3 + c + 1) * 16].reduce(0, +) / 16 }
        }
        let w: [Float] = [1, -2, 0.5, 3, -1, 0.25]  // [K, N] = [3, 2]
        let bias: [Float] = [0.125, -0.5]
        let expected = features.flatMap { f in
            (0..<2).map { j in f[0] * w[j] + f[1] * w[2 + j] + f[2] * w[4 + j] + bias[j] }
        }
        // PyTorch's nn.Linear: MatMul by the stored [K, N] weight, then Add; the dynamo exporter transposes fc.weight.
        let direct = Self.head(
            [B.node("MatMul", ["f", "fc.weight"], "m"), B.node("Add", ["m", "fc.bias"], "y")],
            [Self.float("fc.weight", [3, 2], w), Self.float("fc.bias", [2], bias)])
        let wt: [Float] = [1, 0.5, -1, -2, 3, 0.25]  // [N, K]
        let transposed = Self.head(
            [
                B.node("Transpose", ["fc.weight"], "wt"), B.node("MatMul", ["f", "wt"], "m"),
                B.node("Add", ["fc.bias", "m"], "y"),
            ],
            [Self.float("fc.weight", [2, 3], wt), Self.float("fc.bias", [1, 2], bias)])
        for (form, m) in [("MatMul", direct), ("Transpose", transposed)] {
            let model = try B.load(m)
            #expect(model.nodes.map(\.op.kind).suffix(2) == ["Reshape", "Linear"], "\(form)")
            #expect(try model.tensor(named: "fc.weight").scalars == wt, "\(form)")
            #expect(try model.tensor(named: "fc.bias").scalars == bias, "\(form)")
            let y = try Self.run(model)
            #expect(zip(y, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(form): \(y) vs \(expected)")
        }
        // A product read twice keeps its own node; the Add is then a bias of its own.
        let twice = Self.head(
            [
                B.node("MatMul", ["f", "fc.weight"], "m"), B.node("Add", ["m", "fc.bias"], "a"),
                B.node("Add", ["a", "m"], "y"),
            ],
            [Self.float("fc.weight", [3, 2], w), Self.float("fc.bias", [2], bias)])
        let model = try B.load(twice)
        #expect(model.nodes.map(\.op.kind).suffix(3) == ["Linear", "Bias", "Add"])
        let y = try Self.run(model)
        let product = zip(expected, bias + bias).map { $0 - $1 }
        #expect(zip(y, zip(expected, product).map { $0 + $1 }).allSatisfy { abs($0 - $1) < 1e-5 }, "\(y)")
    }

    @Test func addBroadcastsAConstantOrAValuePerChannel() throws {
        let b = try Self.bnOutput()
        let perChannel = B.model(
            tail: [B.node("Add", ["b", "shift"], "y")], extra: [Self.float("shift", [3, 1, 1], [1, 2, 3])])
        #expect(try Self.run(try B.load(perChannel)) == b.indices.map { b[$0] + Float($0 / 16 % 3 + 1) })
        let scalar = B.model(tail: [B.node("Add", ["three", "b"], "y")], extra: [B.initializer("three", [], value: 3)])
        #expect(try Self.run(try B.load(scalar)) == b.map { $0 + 3 })
        // A value [C, 1, 1] added to a feature map: the spatial mean of each channel, added back.
        let pooled = B.model(tail: [B.node("GlobalAveragePool", ["b"], "p"), B.node("Add", ["p", "b"], "y")])
        let means = (0..<6).map { p in b[p * 16..<(p + 1) * 16].reduce(0, +) / 16 }
        let y = try Self.run(try B.load(pooled))
        #expect(zip(y, b.indices.map { b[$0] + means[$0 / 16] }).allSatisfy { abs($0 - $1) < 1e-6 })
        // A constant added to a sample without channels (a squeezed single logit) is refused, not trapped on.
        var squeeze = B.node("Squeeze", ["g"], "s")
        squeeze.attribute = [B.attribute("axes", ints: [1])]
        var gemm = B.node("Gemm", ["f", "w"], "g")
        gemm.attribute = [B.attribute("transB", i: 1)]
        var scalarSample = Self.head(
            [gemm, squeeze, B.node("Add", ["s", "one"], "y")],
            [B.initializer("w", [1, 3]), B.initializer("one", [], value: 1)])
        scalarSample.graph.output = [B.value("y", [nil])]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Add", attribute: "input shape",
                value: "[] (a constant is added to a feature map or vector)")
        ) { try B.load(scalarSample) }
        let other = B.model(tail: [B.node("Add", ["b", "row"], "y")], extra: [Self.float("row", [4], [1, 2, 3, 4])])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Add", attribute: "constant operand",
                value: "[4] for 3 channels (only a scalar or one value each)")
        ) { try B.load(other) }
    }

    /// Attributes whose default changed between operator sets are read at the file's own.
    @Test func defaultsFollowTheFilesOperatorSet() throws {
        // Before opset 7, a BatchNormalization without is_test runs in training mode.
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "b", op: "BatchNormalization", attribute: "training_mode",
                value: "1 or is_test 0 (only the inference form)")
        ) { try B.load(B.model(tail: [B.node("Relu", ["b"], "y")], opset: 6)) }
        var test = B.model(tail: [B.node("Relu", ["b"], "y")], opset: 6)
        test.graph.node[1].attribute = [B.attribute("is_test", i: 1)]
        #expect(try B.load(test).nodes.count == 3)
        // Concat's axis is required from opset 4.
        let concat = B.model(tail: [B.node("Concat", ["b", "b"], "y")])
        #expect(
            throws: ONNXError.unsupportedAttribute(node: "y", op: "Concat", attribute: "axis", value: "missing")
        ) { try B.load(concat) }
    }
}
