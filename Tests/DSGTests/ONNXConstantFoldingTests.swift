import DSG
import Foundation
import Testing

@testable import DSGONNX

/// Folding of nodes whose inputs are all constants, checked against values worked out by hand from ONNX's
/// operator specifications.
@Suite("ONNX constant folding")
struct ONNXConstantFoldingTests {
    typealias B = ONNXBadInputTests

    static func ints(_ dims: [Int64], _ values: [Int64]) -> Onnx_TensorProto {
        var t = ONNXOperatorTests.int64("c", values)
        t.dims = dims
        return t
    }

    /// The folded value of `op` on `inputs` (nil for an absent optional one), as dimensions and integers.
    static func fold(
        _ op: String, _ inputs: [Onnx_TensorProto?], _ attributes: [Onnx_AttributeProto] = [], opset: Int = 13
    ) throws -> (dims: [Int], values: [Int]) {
        var node = B.node(op, inputs.map { $0 == nil ? "" : "in" }, "out")
        node.attribute = attributes
        let t = try ONNXConstantFolding.fold(node, inputs, opset: opset)
        return (t.dims.map { Int($0) }, try t.integers())
    }

    @Test func pyTorchsPadChainGivesONNXPads() throws {
        // F.pad(x, [0, 1, 0, 1]) at opset 13 without constant folding: [w_begin, w_end, h_begin, h_end] padded
        // with zeros to 2 x rank, as [rank, 2], reversed along axis 0, transposed, flattened.
        let padded = try Self.fold(
            "Concat", [Self.ints([4], [0, 1, 0, 1]), Self.ints([4], [0, 0, 0, 0])], [B.attribute("axis", i: 0)])
        #expect(padded.values == [0, 1, 0, 1, 0, 0, 0, 0])
        let pairs = try Self.fold("Reshape", [Self.ints([8], padded.values.map(Int64.init)), Self.ints([2], [-1, 2])])
        #expect(pairs.dims == [4, 2])
        let reversed = try Self.fold(
            "Slice",
            [
                Self.ints([4, 2], pairs.values.map(Int64.init)), Self.ints([1], [-1]), Self.ints([1], [-Int64.max]),
                Self.ints([1], [0]), Self.ints([1], [-1]),
            ])
        #expect(reversed.dims == [4, 2] && reversed.values == [0, 0, 0, 0, 0, 1, 0, 1])
        let transposed = try Self.fold(
            "Transpose", [Self.ints([4, 2], reversed.values.map(Int64.init))], [B.attribute("perm", ints: [1, 0])])
        #expect(transposed.dims == [2, 4] && transposed.values == [0, 0, 0, 0, 0, 0, 1, 1])
        // The ONNX pads: begins of N, C, H, W, then ends — one more pixel at the bottom and right.
    }

    @Test func slicesClampAndStep() throws {
        let x = Self.ints([2, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        // Axis 1 from 1 to past the end in steps of 2; axis 0 from the last row back to before the first.
        let s = try Self.fold(
            "Slice",
            [
                x, Self.ints([2], [1, -1]), Self.ints([2], [100, -100]), Self.ints([2], [1, 0]),
                Self.ints([2], [2, -1]),
            ])
        #expect(s.dims == [2, 2] && s.values == [6, 8, 1, 3])
        // Opset 9 writes starts, ends and axes as attributes.
        let old = try Self.fold(
            "Slice", [x],
            [
                B.attribute("starts", ints: [2]), B.attribute("ends", ints: [-1]), B.attribute("axes", ints: [1]),
            ], opset: 9)
        #expect(old.dims == [2, 2] && old.values == [2, 3, 7, 8])
    }

    /// Found by review: inputs that would overflow an index or a size computation are refused or computed safely.
    @Test func extremeStepsAndDimensionsNeitherTrapNorOverflow() throws {
        let x = Self.ints([5], [0, 1, 2, 3, 4])
        let huge = try Self.fold(
            "Slice", [x, Self.ints([1], [1]), Self.ints([1], [5]), Self.ints([1], [0]), Self.ints([1], [Int64.max])])
        #expect(huge.values == [1])
        let back = try Self.fold(
            "Slice",
            [x, Self.ints([1], [-1]), Self.ints([1], [-100]), Self.ints([1], [0]), Self.ints([1], [-Int64.max])])
        #expect(back.values == [4])
        var hidden = Self.ints([0, 1 << 40], [])
        hidden.name = "hidden"
        #expect(throws: ONNXError.dimensions(tensor: "hidden", dimensions: [0, 1 << 40])) {
            try Self.fold("Transpose", [hidden])
        }
        // Attributes an opset moved to inputs are refused, not ignored.
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "out", op: "Slice", attribute: "starts", value: "an attribute from opset 10 on")
        ) { try Self.fold("Slice", [x, Self.ints([1], [0]), Self.ints([1], [2])], [B.attribute("starts", ints: [1])]) }
    }

    @Test func arithmeticBroadcastsAndRefusesTheBatchAndOverflow() throws {
        let sum = try Self.fold("Add", [Self.ints([2, 1], [10, 20]), Self.ints([3], [1, 2, 3])])
        #expect(sum.dims == [2, 3] && sum.values == [11, 12, 13, 21, 22, 23])
        #expect(try Self.fold("Sub", [Self.ints([], [8]), Self.ints([1], [3])]).values == [5])
        #expect(try Self.fold("Mul", [Self.ints([2], [4, -2]), Self.ints([], [3])]).values == [12, -6])
        let batch = Self.ints([1], [Int64(ONNXGraphImporter.batchMarker)])
        #expect(
            throws: ONNXError.unsupportedAttribute(node: "out", op: "Mul", attribute: "input", value: "the batch size")
        ) { try Self.fold("Mul", [batch, Self.ints([1], [2])]) }
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "out", op: "Mul", attribute: "result", value: "an integer overflow")
        ) { try Self.fold("Mul", [Self.ints([1], [Int64.max / 2]), Self.ints([1], [3])]) }
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "out", op: "Add", attribute: "broadcasting", value: "[2] and [3]")
        ) { try Self.fold("Add", [Self.ints([2], [1, 2]), Self.ints([3], [1, 2, 3])]) }
        // A broadcast to 2^13 x 2^12 elements is refused before it is built.
        let column = Self.ints([1 << 13, 1], Array(repeating: 1, count: 1 << 13))
        let row = Self.ints([1, 1 << 12], Array(repeating: 2, count: 1 << 12))
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "out", op: "Mul", attribute: "result", value: "[8192, 4096] (too large to fold)")
        ) { try Self.fold("Mul", [column, row]) }
    }

    @Test func shapesCastsAndFills() throws {
        var fill = Onnx_AttributeProto()
        (fill.name, fill.type, fill.t) = ("value", .tensor, Self.ints([1], [7]))
        let filled = try Self.fold("ConstantOfShape", [Self.ints([2], [2, 3])], [fill])
        #expect(filled.dims == [2, 3] && filled.values == Array(repeating: 7, count: 6))
        #expect(throws: ONNXError.self) {
            try Self.fold("ConstantOfShape", [Self.ints([2], [1 << 20, 1 << 20])], [fill])
        }
        let shape = try Self.fold(
            "Shape", [Self.ints([2, 3, 4], Array(repeating: 0, count: 24))], [B.attribute("start", i: -2)])
        #expect(shape.values == [3, 4])
        let gathered = try Self.fold(
            "Gather", [Self.ints([2, 3], [1, 2, 3, 4, 5, 6]), Self.ints([2], [2, -3])], [B.attribute("axis", i: 1)])
        #expect(gathered.dims == [2, 2] && gathered.values == [3, 1, 6, 4])
        let unsqueezed = try Self.fold("Unsqueeze", [Self.ints([], [5]), Self.ints([1], [0])])
        #expect(unsqueezed.dims == [1] && unsqueezed.values == [5])
        // Cast of a float to an integer truncates towards zero.
        var floats = B.initializer("f", [3])
        floats.floatData = [2.7, -2.7, 0.5]
        #expect(try Self.fold("Cast", [floats], [B.attribute("to", i: 7)]).values == [2, -2, 0])
        // A transposed float weight keeps its name, which names the layer that reads it.
        var node = B.node("Transpose", ["w"], "wt")
        node.attribute = [B.attribute("perm", ints: [1, 0])]
        let weight = try ONNXConstantFolding.fold(node, [B.initializer("fc.weight", [2, 3])], opset: 13)
        #expect(weight.name == "fc.weight" && weight.dims == [3, 2])
    }
}
