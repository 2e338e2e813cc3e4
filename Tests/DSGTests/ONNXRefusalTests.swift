import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGONNX

/// The refusals of the later operators and bounds, each with its exact error, and the conformance runner's
/// three outcomes on cases written here.
@Suite("ONNX refusals and the conformance runner")
struct ONNXRefusalTests {
    typealias B = ONNXBadInputTests

    static func refusal(_ node: String, _ op: String, _ attribute: String, _ value: String) -> ONNXError {
        .unsupportedAttribute(node: node, op: op, attribute: attribute, value: value)
    }

    @Test func aMissingFileIsUnreadable() {
        let url = URL(fileURLWithPath: "/nonexistent/m.onnx")
        #expect(throws: ONNXError.self) { try ONNXImport.model(contentsOf: url) }
        do { _ = try ONNXImport.model(contentsOf: url) } catch let error as ONNXError {
            guard case .unreadable(let file, _) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(file == "m.onnx")
        } catch { Issue.record("\(error)") }
    }

    @Test func aValueNoNodeProducesIsNamed() {
        #expect(throws: ONNXError.unknownValue(node: "y", op: "Relu", value: "nowhere")) {
            try B.load(B.model(tail: [B.node("Relu", ["nowhere"], "y")]))
        }
    }

    @Test func inputsOfAnotherTypeOrTooLargeAreRefused() {
        var double = B.model()
        guard case .tensorType(var type) = double.graph.input[0].type.value else { return }
        type.elemType = 11
        double.graph.input[0].type.value = .tensorType(type)
        #expect(throws: ONNXError.inputShape(file: "m.onnx", input: "image", reason: "not a Float32 tensor")) {
            try B.load(double)
        }
        var huge = B.model()
        huge.graph.input = [B.value("image", [nil, 2, 1 << 16, 1 << 16])]
        #expect(
            throws: ONNXError.inputShape(
                file: "m.onnx", input: "image", reason: "[2, 65536, 65536] is larger than swift-dsg runs")
        ) { try B.load(huge) }
    }

    @Test func sizesBeyondTheBoundsAreRefused() {
        var group = B.model()
        group.graph.node[0].attribute.append(B.attribute("group", i: 1 << 62))
        #expect(throws: Self.refusal("c", "Conv", "group", "\(1 << 62)")) { try B.load(group) }
        var pads = B.model()
        pads.graph.node[0].attribute[0] = B.attribute("pads", ints: [1 << 21, 0, 1 << 21, 0])
        #expect(
            throws: Self.refusal("c", "Conv", "pads", "[\(1 << 21), 0, \(1 << 21), 0] (larger than swift-dsg builds)")
        ) { try B.load(pads) }
        // Within the attribute bound, but an output of 3 x (2^19 + 4) x 4 x ... elements is not.
        var output = B.model()
        output.graph.node[0].attribute[0] = B.attribute("pads", ints: [1 << 19, 1 << 19, 1 << 19, 1 << 19])
        #expect(throws: ONNXError.self) { try B.load(output) }
    }

    @Test func formsTheLaterOperatorsDoNotTakeAreRefused() {
        var pool = B.node("MaxPool", ["b"], "y")
        pool.attribute = [B.attribute("kernel_shape", ints: [2, 2]), B.attribute("dilations", ints: [2, 2])]
        #expect(throws: Self.refusal("y", "MaxPool", "dilations", "[2, 2] (only 1)")) {
            try B.load(B.model(tail: [pool]))
        }
        #expect(throws: Self.refusal("y", "Squeeze", "axes", "none")) {
            try B.load(B.model(tail: [B.node("Squeeze", ["b"], "y")]))
        }
        var mean = B.node("ReduceMean", ["b"], "y")
        mean.attribute = [B.attribute("axes", ints: [1])]
        #expect(throws: Self.refusal("y", "ReduceMean", "axes", "[1] on [3, 4, 4] (only the spatial axes of an image)"))
        {
            try B.load(B.model(tail: [mean]))
        }
        var concat = B.node("Concat", ["b", "b"], "y")
        concat.attribute = [B.attribute("axis", i: 2)]
        #expect(throws: Self.refusal("y", "Concat", "axis", "2 (only the channels)")) {
            try B.load(B.model(tail: [concat]))
        }
        #expect(
            throws: Self.refusal(
                "y", "Mul", "broadcasting", "[3, 4, 4] × [2, 4, 4] (only equal shapes and a [C, 1, 1] gate)")
        ) { try B.load(B.model(tail: [B.node("Mul", ["b", "image"], "y")])) }
        let wide = B.initializer("k", [1, 1, 1, 1, 1], value: 2)
        #expect(throws: Self.refusal("y", "Mul", "constant operand", "[1, 1, 1, 1, 1] (only a scalar)")) {
            try B.load(B.model(tail: [B.node("Mul", ["b", "k"], "y")], extra: [wide]))
        }
        // A graph whose output is a constant (here a folded Gather) does not depend on its input.
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "graph output", op: "Output", attribute: "y", value: "a constant (it does not read the input)")
        ) {
            try B.load(
                B.model(
                    tail: [B.node("Gather", ["data", "i"], "y")],
                    extra: [ONNXOperatorTests.int64("data", [1, 2, 3, 4]), ONNXOperatorTests.int64("i", [0])]))
        }
    }

    // MARK: - The conformance runner

    /// A case folder as ONNX's test data lays it out: `model.onnx`, `test_data_set_0/input_0.pb`, `output_0.pb`.
    static func writeCase(_ folder: URL, _ model: Onnx_ModelProto, input: [Float], output: [Float]) throws {
        let data = folder.appendingPathComponent("test_data_set_0")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try model.serializedData().write(to: folder.appendingPathComponent("model.onnx"))
        for (name, values) in [("input_0.pb", input), ("output_0.pb", output)] {
            var t = Onnx_TensorProto()
            (t.dims, t.dataType, t.floatData) = ([1, 4], ONNXDataType.float, values)
            try t.serializedData().write(to: data.appendingPathComponent(name))
        }
    }

    static func reluCase(op: String = "Relu") -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 7
        var set = Onnx_OperatorSetIdProto()
        set.version = 13
        m.opsetImport = [set]
        m.graph.node = [B.node(op, ["x"], "y")]
        m.graph.input = [B.value("x", [1, 4])]
        m.graph.output = [B.value("y", [1, 4])]
        return m
    }

    @Test func theRunnerPassesRefusesAndFails() throws {
        let folder = try TemporaryFolder("conformance")
        let x: [Float] = [-1, 0.5, 2, -3]
        try Self.writeCase(folder.file("node/test_pass"), Self.reluCase(), input: x, output: [0, 0.5, 2, 0])
        try Self.writeCase(folder.file("node/test_wrong"), Self.reluCase(), input: x, output: [0, 0.5, 2, 1])
        try Self.writeCase(folder.file("node/test_other"), Self.reluCase(op: "Softmax"), input: x, output: x)
        var clip = Self.reluCase(op: "LeakyRelu")
        clip.graph.node[0].attribute = [B.attribute("alpha", i: 1)]  // the wrong type: refused
        try Self.writeCase(folder.file("node/test_refused"), clip, input: x, output: x)
        let results = ONNXConformance.runSuites(at: folder.url)
        // Softmax is not supported: that case is not run at all.
        #expect(results.map(\.name) == ["test_pass", "test_refused", "test_wrong"])
        #expect(results[0].outcome == .passed)
        guard case .refused = results[1].outcome else {
            Issue.record("\(results[1].outcome)")
            return
        }
        #expect(results[2].outcome == .failed("element 3: 0.0, expected 1.0"))
    }

    @Test func foldedCasesRunOnConstants() throws {
        let folder = try TemporaryFolder("folding")
        let x: [Float] = [-1, 0.5, 2, -3]
        // [1, 4] transposed is [4, 1]: the same values, so only the dimensions can be wrong.
        var transpose = Self.reluCase(op: "Transpose")
        transpose.graph.output = [B.value("y", [4, 1])]
        try Self.writeCase(folder.file("node/test_transpose"), transpose, input: x, output: x)
        let results = ONNXConformance.runSuites(at: folder.url)
        #expect(results.map(\.name) == ["test_transpose", "test_transpose (folded)"])
        #expect(results.map(\.operators) == [["Transpose"], ["Transpose (folded)"]])
        guard case .refused = results[0].outcome else {  // a value is transposed only by the identity
            Issue.record("\(results[0].outcome)")
            return
        }
        #expect(results[1].outcome == .failed("dimensions [4, 1], expected [1, 4]"))
        var expected = Onnx_TensorProto()
        (expected.dims, expected.dataType, expected.floatData) = ([4, 1], ONNXDataType.float, x)
        try expected.serializedData().write(to: folder.file("node/test_transpose/test_data_set_0/output_0.pb"))
        #expect(ONNXConformance.fold(caseAt: folder.file("node/test_transpose")) == .passed)
    }
}
