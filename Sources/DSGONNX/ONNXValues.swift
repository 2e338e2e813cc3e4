import DSGCore
import Foundation

/// ONNX's element type numbers (`TensorProto.DataType`) the importer reads and the exporter writes.
enum ONNXDataType {
    static let float: Int32 = 1, uint8: Int32 = 2, int8: Int32 = 3, int32: Int32 = 6, int64: Int32 = 7, bool: Int32 = 9
}

extension Onnx_TensorProto {
    /// The dimensions; each must be non-negative and their product must fit an `Int`.
    func shape() throws(ONNXError) -> Shape {
        let shape = Shape(dims.map { Int($0) })
        guard shape.dimensions.allSatisfy({ $0 >= 0 }), shape.checkedElementCount != nil else {
            throw .dimensions(tensor: name, dimensions: dims.map { Int($0) })
        }
        return shape
    }

    private func checkLocation() throws(ONNXError) {
        guard dataLocation != .external, externalData.isEmpty else { throw .externalData(tensor: name) }
    }

    /// `count` little-endian integers of type `T` from `raw_data`.
    private func raw<T: FixedWidthInteger>(_: T.Type, count: Int) throws(ONNXError) -> [T] {
        let width = MemoryLayout<T>.size
        let (bytes, overflow) = width.multipliedReportingOverflow(by: count)
        guard !overflow, rawData.count == bytes else {
            throw .tensorSize(tensor: name, expected: count, found: rawData.count / width)
        }
        return rawData.withUnsafeBytes { bytes in
            (0..<count).map { T(littleEndian: bytes.loadUnaligned(fromByteOffset: width * $0, as: T.self)) }
        }
    }

    /// `values` if they fill the tensor.
    private func typed<T>(_ values: [T], count: Int) throws(ONNXError) -> [T] {
        guard values.count == count else { throw .tensorSize(tensor: name, expected: count, found: values.count) }
        return values
    }

    /// The values of a Float32 tensor, from `raw_data` (little-endian) or `float_data`.
    func floats() throws(ONNXError) -> [Float] {
        try checkLocation()
        guard dataType == ONNXDataType.float else {
            throw .dataType(tensor: name, expected: "1 (FLOAT)", found: Int(dataType))
        }
        let count = try shape().elementCount
        if rawData.isEmpty { return try typed(floatData, count: count) }
        return try raw(UInt32.self, count: count).map(Float.init(bitPattern:))
    }

    /// The values of an INT64 or INT32 tensor (shapes, axes, bounds), from `raw_data` or the typed field.
    func integers() throws(ONNXError) -> [Int] {
        try checkLocation()
        let count = try shape().elementCount
        switch dataType {
        case ONNXDataType.int64:
            let values = rawData.isEmpty ? try typed(int64Data, count: count) : try raw(Int64.self, count: count)
            return values.map { Int($0) }
        case ONNXDataType.int32:
            let values = rawData.isEmpty ? try typed(int32Data, count: count) : try raw(Int32.self, count: count)
            return values.map { Int($0) }
        case ONNXDataType.bool:  // one byte each in raw_data, else int32_data
            let values =
                rawData.isEmpty
                ? try typed(int32Data.map(Int.init), count: count) : try raw(UInt8.self, count: count).map(Int.init)
            return values
        default:
            throw .dataType(tensor: name, expected: "7 (INT64), 6 (INT32) or 9 (BOOL)", found: Int(dataType))
        }
    }

    /// The tensor as a ``DSGCore/Tensor`` of its own shape.
    func tensor() throws(ONNXError) -> Tensor {
        Tensor(shape: try shape(), scalars: try floats())
    }
}

extension Onnx_NodeProto {
    /// The attribute called `name`, if the node has it.
    func attribute(_ name: String) -> Onnx_AttributeProto? { attribute.first { $0.name == name } }

    /// The attribute `name` if present, after checking it holds `type` (files that leave the type unset are
    /// read by the field): a FLOAT `transB` must not read as the INT 0.
    private func typed(_ name: String, _ type: Onnx_AttributeProto.AttributeType) throws(ONNXError)
        -> Onnx_AttributeProto?
    {
        guard let a = attribute(name) else { return nil }
        guard a.type == type || a.type == .undefined else {
            throw .unsupportedAttribute(
                node: label, op: opType, attribute: name, value: "of type \(a.type), not \(type)")
        }
        return a
    }

    /// An integer attribute, or `default` when absent.
    func int(_ name: String, default value: Int) throws(ONNXError) -> Int {
        try typed(name, .int).map { Int($0.i) } ?? value
    }

    /// An integer-list attribute, or `default` when absent.
    func ints(_ name: String, default value: [Int]) throws(ONNXError) -> [Int] {
        try typed(name, .ints).map { $0.ints.map { Int($0) } } ?? value
    }

    /// A float attribute, or `default` when absent.
    func float(_ name: String, default value: Float) throws(ONNXError) -> Float { try typed(name, .float)?.f ?? value }

    /// A string attribute, or `default` when absent.
    func string(_ name: String, default value: String) throws(ONNXError) -> String {
        try typed(name, .string).map { String(decoding: $0.s, as: UTF8.self) } ?? value
    }

    /// The node's name for messages: its own, or its operator and first output when it has none.
    var label: String { name.isEmpty ? "\(opType) -> \(output.first ?? "?")" : name }
}
