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
        var ints = Onnx_AttributeProto()
        (ints.name, ints.ints, ints.type) = ("value_ints", [-1, 3], .ints)
        var constant = B.node("Constant", [], "shape2")
        constant.attribute = [ints]
        var transB = Onnx_AttributeProto()
        (transB.name, transB.i, transB.type) = ("transB", 0, .int)
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
                B.initializer("low", [], value: 0), B.initializer("high", [], value: 6), Self.int64("shape", [1, 3]),
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

    @Test func clipBoundsOtherThanReLUAreRefused() throws {
        let m = B.model(
            tail: [B.node("Clip", ["b", "low", "high"], "y")],
            extra: [B.initializer("low", [], value: -1), B.initializer("high", [], value: 1)])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Clip", attribute: "bounds", value: "[-1.0, 1.0] (only [0, 6] and [0, ∞))")
        ) { try B.load(m) }
    }

    @Test func aReshapeOfTheBatchIsRefused() throws {
        let m = B.model(tail: [B.node("Reshape", ["b", "shape"], "y")], extra: [Self.int64("shape", [2, -1])])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Reshape", attribute: "shape", value: "[2, -1] (the first entry must keep the batch)")
        ) { try B.load(m) }
    }
}
