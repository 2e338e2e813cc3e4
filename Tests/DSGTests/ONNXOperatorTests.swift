import DSG
import Foundation
import Testing

@testable import DSGONNX

/// Operators whose constants come as inputs: Clip's bounds, Reshape's shape (INT64 raw data and a Constant
/// node), Gemm's weights stored `[K, N]`.
@Suite("ONNX operators with constant inputs")
struct ONNXOperatorTests {
    typealias B = ONNXBadInputTests

    static func int64(_ name: String, _ values: [Int64]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        (t.name, t.dims, t.dataType) = (name, [Int64(values.count)], ONNXDataType.int64)
        t.rawData = values.withUnsafeBytes { Data($0) }  // little-endian on every machine this runs on
        return t
    }

    @Test func clipReshapeAndGemmImport() throws {
        let ints = B.attribute("value_ints", ints: [-1, 3])
        var constant = B.node("Constant", [], "shape2")
        constant.attribute = [ints]
        let transB = B.attribute("transB", i: 0)
        var gemm = B.node("Gemm", ["r2", "fc.weight", "fc.bias"], "y")
        gemm.attribute = [transB]
        let tail = [
            B.node("Clip", ["b", "low", "high"], "clip"), B.node("GlobalAveragePool", ["clip"], "pool"),
            B.node("Reshape", ["pool", "shape"], "r"), constant, B.node("Reshape", ["r", "shape2"], "r2"), gemm,
        ]
        var weight = B.initializer("fc.weight", [3, 2])  // [K, N]: transB = 0
        weight.floatData = [1, 2, 3, 4, 5, 6]
        var m = B.model(
            tail: tail,
            extra: [
                B.initializer("low", [], value: 0), B.initializer("high", [], value: 6), Self.int64("shape", [-1, 3]),
                weight, B.initializer("fc.bias", [2], value: 0.25),
            ])
        m.graph.output = [B.value("y", [nil, 2])]
        let model = try B.load(m)
        #expect(
            model.nodes.map(\.op.kind) == [
                "Conv2d", "BatchNorm", "ReLU6", "GlobalAveragePool", "Reshape", "Reshape", "Linear",
            ])
        #expect(model.shape(of: model.outputs[0]) == [2])
        // Stored [K, N] = [[1, 2], [3, 4], [5, 6]], the layer keeps [N, K].
        #expect(try model.tensor(named: "fc.weight").scalars == [1, 3, 5, 2, 4, 6])
        #expect(try model.tensor(named: "fc.bias").scalars == [0.25, 0.25])
    }

    @Test func aReshapeOfTheBatchIsRefused() throws {
        let m = B.model(tail: [B.node("Reshape", ["b", "shape"], "y")], extra: [Self.int64("shape", [2, -1])])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Reshape", attribute: "shape", value: "[2, -1] (the first entry must keep the batch)")
        ) { try B.load(m) }
    }

    /// Found by review: forms that ONNX computes differently from what a per-sample graph can, refused.
    @Test func formsThatDependOnTheBatchOrBroadcastOtherwiseAreRefused() throws {
        // A literal 1 for the batch means "one sample" in ONNX, unless the file fixes the batch at 1.
        let one = B.model(tail: [B.node("Reshape", ["b", "shape"], "y")], extra: [Self.int64("shape", [1, -1])])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Reshape", attribute: "shape", value: "[1, -1] (the first entry must keep the batch)")
        ) { try B.load(one) }
        var fixed = one
        fixed.graph.input = [B.value("image", [1, 2, 4, 4])]
        fixed.graph.output = [B.value("y", [1, 48])]
        #expect(try B.load(fixed).shape(of: try B.load(fixed).outputs[0]) == [48])
        // Gemm's C of shape [M, 1] is one value per row, not per output.
        var gemm = B.node("Gemm", ["flat", "w", "c"], "y")
        let transB = B.attribute("transB", i: 1)
        gemm.attribute = [transB]
        let rows = B.model(
            tail: [B.node("Flatten", ["b"], "flat"), gemm],
            extra: [B.initializer("w", [2, 48]), B.initializer("c", [4, 1])])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Gemm", attribute: "constant operand",
                value: "[4, 1] for 2 features (only a scalar or one value each)")
        ) { try B.load(rows) }
        // An attribute of the wrong type is refused, not read as 0.
        var typed = B.model(tail: [B.node("LeakyRelu", ["b"], "y")])
        let alpha = B.attribute("alpha", i: 1)
        typed.graph.node[2].attribute = [alpha]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "LeakyRelu", attribute: "alpha", value: "of type int, not float")
        ) { try B.load(typed) }
    }
}
