import DSG
import Foundation
import Testing

@testable import DSGONNX

/// Every defect of an ONNX file is a typed error naming the node, operator, tensor or attribute.
@Suite("ONNX files the importer refuses")
struct ONNXBadInputTests {
    /// A Float32 initializer of `dims` filled with `value`.
    static func initializer(_ name: String, _ dims: [Int64], value: Float = 0.5) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        (t.name, t.dims, t.dataType) = (name, dims, ONNXDataType.float)
        t.floatData = Array(repeating: value, count: Int(dims.reduce(1, *)))
        return t
    }

    /// An INT, INTS or STRING attribute, its type set as a file would.
    static func attribute(_ name: String, i: Int64? = nil, ints: [Int64]? = nil, s: Data? = nil) -> Onnx_AttributeProto
    {
        var a = Onnx_AttributeProto()
        a.name = name
        if let i { (a.i, a.type) = (i, .int) }
        if let ints { (a.ints, a.type) = (ints, .ints) }
        if let s { (a.s, a.type) = (s, .string) }
        return a
    }

    static func node(_ op: String, _ inputs: [String], _ output: String, name: String = "") -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        (n.opType, n.input, n.output, n.name) = (op, inputs, [output], name.isEmpty ? output : name)
        return n
    }

    static func value(_ name: String, _ dims: [Int64?]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var type = Onnx_TypeProto.Tensor()
        type.elemType = ONNXDataType.float
        type.shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = d } else { dim.dimParam = "batch" }
            return dim
        }
        v.type.value = .tensorType(type)
        return v
    }

    /// image [N, 2, 4, 4] → Conv (3 channels, 3x3, pad 1) → BatchNormalization → `tail` → output "y".
    static func model(tail: [Onnx_NodeProto] = [], extra: [Onnx_TensorProto] = [], opset: Int64 = 13) -> Onnx_ModelProto
    {
        var g = Onnx_GraphProto()
        var conv = node("Conv", ["image", "conv.weight"], "c")
        let pads = Self.attribute("pads", ints: [1, 1, 1, 1])
        conv.attribute = [pads]
        g.node =
            [
                conv,
                node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], "b"),
            ]
            + tail
        g.initializer =
            [
                initializer("conv.weight", [3, 2, 3, 3]), initializer("bn.weight", [3], value: 1),
                initializer("bn.bias", [3]), initializer("bn.running_mean", [3]),
                initializer("bn.running_var", [3], value: 1),
            ] + extra
        g.input = [value("image", [nil, 2, 4, 4])]
        g.output = [value(tail.last?.output[0] ?? "b", [nil, 3, 4, 4])]
        var m = Onnx_ModelProto()
        m.irVersion = 7
        var set = Onnx_OperatorSetIdProto()
        set.version = opset
        m.opsetImport = [set]
        m.graph = g
        return m
    }

    static func load(_ m: Onnx_ModelProto) throws -> Model {
        try ONNXImport.model(from: try m.serializedData(), file: "m.onnx")
    }

    @Test func aWellFormedGraphImports() throws {
        let model = try Self.load(Self.model(tail: [Self.node("Relu", ["b"], "y")]))
        #expect(model.inputs.map(\.shape) == [[2, 4, 4]] && model.batchNormLayers.map(\.name) == ["bn"])
        #expect(model.nodes.map(\.name) == ["conv", "bn", "y"])
    }

    @Test func anUnsupportedOperatorNamesItselfAndItsNode() {
        #expect(throws: ONNXError.unsupportedOperator(node: "soft", op: "Softmax")) {
            try Self.load(Self.model(tail: [Self.node("Softmax", ["b"], "y", name: "soft")]))
        }
    }

    @Test func aMissingInitializerIsNamed() {
        var m = Self.model()
        m.graph.initializer.removeAll { $0.name == "bn.running_var" }
        #expect(throws: ONNXError.missingInitializer(node: "b", op: "BatchNormalization", tensor: "bn.running_var")) {
            try Self.load(m)
        }
    }

    @Test func externalDataIsRefused() {
        var m = Self.model()
        m.graph.initializer[0].dataLocation = .external
        #expect(throws: ONNXError.externalData(tensor: "conv.weight")) { try Self.load(m) }
    }

    @Test func weightsOfAnotherTypeThanFloat32AreRefused() {
        var m = Self.model()
        m.graph.initializer[0].dataType = 11  // DOUBLE
        #expect(throws: ONNXError.dataType(tensor: "conv.weight", expected: "1 (FLOAT)", found: 11)) {
            try Self.load(m)
        }
    }

    @Test func weightsThatDoNotFillTheirShapeAreRefused() {
        var m = Self.model()
        m.graph.initializer[0].floatData.removeLast()
        #expect(throws: ONNXError.tensorSize(tensor: "conv.weight", expected: 54, found: 53)) { try Self.load(m) }
    }

    @Test func dynamicImageSizesAreRefused() {
        var m = Self.model()
        m.graph.input = [Self.value("image", [nil, 2, nil, 4])]
        #expect(
            throws: ONNXError.inputShape(
                file: "m.onnx", input: "image",
                reason: "every dimension but the batch must be a fixed number (dynamic sizes are not)")
        ) { try Self.load(m) }
    }

    @Test func severalInputsOrOutputsAreRefused() {
        var two = Self.model()
        two.graph.input.append(Self.value("mask", [nil, 1, 4, 4]))
        #expect(throws: ONNXError.inputCount(file: "m.onnx", count: 2)) { try Self.load(two) }
        var outputs = Self.model()
        outputs.graph.output.append(Self.value("c", [nil, 3, 4, 4]))
        #expect(throws: ONNXError.outputCount(file: "m.onnx", count: 2)) { try Self.load(outputs) }
    }

    @Test func trainingModeBatchNormIsRefused() {
        var m = Self.model()
        let training = Self.attribute("training_mode", i: 1)
        m.graph.node[1].attribute = [training]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "b", op: "BatchNormalization", attribute: "training_mode",
                value: "1 or is_test 0 (only the inference form)")
        ) { try Self.load(m) }
    }

    @Test func unknownOperatorSetsAndIRVersionsAreRefused() {
        #expect(throws: ONNXError.unsupportedVersion(file: "m.onnx", what: "operator set 21")) {
            try Self.load(Self.model(opset: 21))
        }
        var m = Self.model()
        m.irVersion = 11
        #expect(throws: ONNXError.unsupportedVersion(file: "m.onnx", what: "IR version 11")) { try Self.load(m) }
    }

    @Test func asymmetricPaddingIsRefused() {
        var m = Self.model()
        m.graph.node[0].attribute[0].ints = [1, 1, 0, 0]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "c", op: "Conv", attribute: "pads", value: "[1, 1, 0, 0] (only equal padding at both ends)")
        ) { try Self.load(m) }
    }

    @Test func anAttributeTheImporterDoesNotReadIsRefusedNotIgnored() {
        var m = Self.model()
        let spatial = Self.attribute("consumed_inputs", i: 1)
        m.graph.node[0].attribute.append(spatial)
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "c", op: "Conv", attribute: "consumed_inputs", value: "set (the importer does not implement it)")
        ) { try Self.load(m) }
    }

    @Test func trainingModeDropoutIsRefused() {
        var mode = Onnx_TensorProto()
        (mode.name, mode.dataType, mode.rawData) = ("mode", ONNXDataType.bool, Data([1]))
        let m = Self.model(tail: [Self.node("Dropout", ["b", "", "mode"], "y")], extra: [mode])
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Dropout", attribute: "training_mode", value: "true (only inference)")
        ) { try Self.load(m) }
        var off = mode
        off.rawData = Data([0])
        #expect(throws: Never.self) {
            try Self.load(Self.model(tail: [Self.node("Dropout", ["b", "", "mode"], "y")], extra: [off]))
        }
    }

    /// Found by fuzzing: these once trapped (an index out of range, an overflowing product, a division by zero).
    @Test func inputsTheFuzzerFoundAreRefused() {
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "y", op: "Identity", attribute: "inputs", value: "[] (1 needed)")
        ) { try Self.load(Self.model(tail: [Self.node("Identity", [], "y")])) }
        var huge = Self.model()
        huge.graph.initializer[0].dims = [Int64.max / 2, 4, 0]
        #expect(throws: ONNXError.dimensions(tensor: "conv.weight", dimensions: [Int(Int64.max / 2), 4, 0])) {
            try Self.load(huge)
        }
        var strides = Self.model()
        let same = Self.attribute("auto_pad", s: Data("SAME_UPPER".utf8))
        let zero = Self.attribute("strides", ints: [0, 1])
        strides.graph.node[0].attribute = [same, zero]
        #expect(
            throws: ONNXError.unsupportedAttribute(
                node: "c", op: "Conv", attribute: "strides/dilations", value: "[0, 1]/[1, 1] (2-D and positive)")
        ) { try Self.load(strides) }
    }
}
