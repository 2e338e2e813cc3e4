import Foundation

/// Why a safetensors file could not be read or does not fit a model. Every case names the file.
public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read from disk; `reason` is the system's message.
    case unreadable(file: String, reason: String)
    /// The file could not be written (or renamed into place); `reason` is the system's message.
    case unwritable(file: String, reason: String)
    /// The file is shorter than the 8-byte header size.
    case tooShort(file: String, bytes: Int)
    /// The header size field claims more bytes than the file holds after it.
    case headerSize(file: String, declared: UInt64, available: Int)
    /// The header is not a JSON object.
    case headerNotJSON(file: String)
    /// A header entry is malformed: not an object, no dtype, a bad shape, or `__metadata__` that is not strings.
    case badEntry(file: String, tensor: String, reason: String)
    /// A tensor's dtype is not F32, the only one supported.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A tensor's `data_offsets` are malformed, do not span its shape's bytes, or end past the file.
    case offsets(file: String, tensor: String, reason: String)
    /// The tensors do not tile the data: a gap, an overlap, or bytes after the last tensor.
    case uncoveredData(file: String, reason: String)
    /// The file lacks a tensor the model needs (``Model/load(_:file:ignoringPrefixes:)``).
    case missingTensor(file: String, tensor: String)
    /// The file holds a tensor the model does not have and no ignored prefix covers.
    case unexpectedTensor(file: String, tensor: String)
    /// A tensor's shape differs from the one the model (or optimizer state) needs.
    case shape(file: String, tensor: String, expected: Shape, found: Shape)

    /// The file's name and what is wrong with it, naming the tensor where there is one.
    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot be read (\(r))"
        case .unwritable(let f, let r): return "\(f): cannot be written (\(r))"
        case .tooShort(let f, let n):
            return "\(f): \(n) bytes is too short for a safetensors file (8-byte header size first)"
        case .headerSize(let f, let declared, let available):
            return "\(f): the header claims \(declared) bytes but only \(available) follow the size field"
        case .headerNotJSON(let f): return "\(f): the header is not a JSON object"
        case .badEntry(let f, let t, let r): return "\(f): tensor '\(t)': \(r)"
        case .unsupportedDType(let f, let t, let d): return "\(f): tensor '\(t)' has dtype \(d); only F32 is supported"
        case .offsets(let f, let t, let r): return "\(f): tensor '\(t)': \(r)"
        case .uncoveredData(let f, let r): return "\(f): \(r)"
        case .missingTensor(let f, let t): return "\(f): no tensor named '\(t)', which the model needs"
        case .unexpectedTensor(let f, let t): return "\(f): tensor '\(t)' is not part of the model"
        case .shape(let f, let t, let e, let found):
            return "\(f): tensor '\(t)' has shape \(found), the model needs \(e)"
        }
    }
}

/// The safetensors format (an 8-byte little-endian header size, a JSON header, then raw little-endian tensor
/// data), as PyTorch users save models with the `safetensors` package. Float32 tensors only.
public enum Safetensors {
    /// The tensors of a file in header order, and its `__metadata__` strings.
    public struct Contents: Sendable {
        /// The named tensors: written in this order; after ``Safetensors/decode(_:name:)`` in data-offset order (the
        /// JSON header's own order is not kept).
        public var tensors: [(name: String, tensor: Tensor)]
        /// The header's `__metadata__` (string to string; settings are stored as JSON strings); empty when absent.
        public var metadata: [String: String]

        /// Contents to encode: `tensors` in file order, optional metadata (written only when not empty).
        public init(tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) {
            (self.tensors, self.metadata) = (tensors, metadata)
        }

        /// The first tensor called `name`, or nil (a linear search).
        public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }
    }

    /// The bytes of a safetensors file holding `contents`, tensors laid out in the given order.
    public static func encode(_ contents: Contents) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for (name, tensor) in contents.tensors {
            let size = tensor.elementCount * 4
            header[name] = ["dtype": "F32", "shape": tensor.shape.dimensions, "data_offsets": [offset, offset + size]]
            offset += size
        }
        if !contents.metadata.isEmpty { header["__metadata__"] = contents.metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var data = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for (_, tensor) in contents.tensors {
            tensor.withUnsafeBufferPointer { buffer in
                for value in buffer {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
                }
            }
        }
        return data
    }

    /// Writes `contents` to `url` atomically (a temporary file renamed into place).
    public static func write(_ contents: Contents, to url: URL) throws(SafetensorsError) {
        do { try encode(contents).write(to: url, options: .atomic) } catch {
            throw .unwritable(file: url.lastPathComponent, reason: (error as NSError).localizedDescription)
        }
    }

    /// Reads and validates a safetensors file.
    public static func read(_ url: URL) throws(SafetensorsError) -> Contents {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .unreadable(file: url.lastPathComponent, reason: (error as NSError).localizedDescription)
        }
        return try decode(data, name: url.lastPathComponent)
    }

    /// Validates and decodes the bytes of a safetensors file: the header size against the file, every entry's
    /// dtype, shape and offsets against its size, and that the entries tile the data exactly.
    public static func decode(_ data: Data, name: String) throws(SafetensorsError) -> Contents {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw .tooShort(file: name, bytes: bytes.count) }
        let headerSize = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerSize <= UInt64(bytes.count - 8) else {
            throw .headerSize(file: name, declared: headerSize, available: bytes.count - 8)
        }
        let dataStart = 8 + Int(headerSize)
        guard let header = (try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))) as? [String: Any]
        else {
            throw .headerNotJSON(file: name)
        }
        var metadata: [String: String] = [:]
        var entries: [(name: String, shape: Shape, begin: Int, end: Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: String] else {
                    throw .badEntry(file: name, tensor: key, reason: "metadata must map strings to strings")
                }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw .badEntry(file: name, tensor: key, reason: "not a JSON object")
            }
            guard let dtype = entry["dtype"] as? String else {
                throw .badEntry(file: name, tensor: key, reason: "no dtype")
            }
            guard dtype == "F32" else { throw .unsupportedDType(file: name, tensor: key, dtype: dtype) }
            guard let shape = entry["shape"] as? [Int], shape.allSatisfy({ $0 >= 0 }) else {
                throw .badEntry(file: name, tensor: key, reason: "shape must be a list of non-negative integers")
            }
            guard let offsets = entry["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0,
                offsets[0] <= offsets[1]
            else {
                throw .offsets(
                    file: name, tensor: key, reason: "data_offsets must be [begin, end] with 0 <= begin <= end")
            }
            // A corrupt header can give a shape whose byte count does not fit an Int.
            guard
                let expected = Shape(shape).checkedElementCount.flatMap({ n -> Int? in
                    let (bytes, overflow) = n.multipliedReportingOverflow(by: 4)
                    return overflow ? nil : bytes
                })
            else { throw .badEntry(file: name, tensor: key, reason: "shape \(shape) is larger than any file") }
            guard offsets[1] - offsets[0] == expected else {
                throw .offsets(
                    file: name, tensor: key,
                    reason: "shape \(shape) needs \(expected) bytes, data_offsets span \(offsets[1] - offsets[0])")
            }
            guard dataStart + offsets[1] <= bytes.count else {
                throw .offsets(
                    file: name, tensor: key,
                    reason:
                        "data_offsets end at \(offsets[1]), past the \(bytes.count - dataStart) data bytes "
                        + "(truncated file?)"
                )
            }
            entries.append((key, Shape(shape), offsets[0], offsets[1]))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var covered = 0
        for e in entries {
            guard e.begin == covered else {
                throw .uncoveredData(
                    file: name,
                    reason: e.begin > covered
                        ? "bytes \(covered)..<\(e.begin) of the data belong to no tensor"
                        : "tensor '\(e.name)' overlaps another")
            }
            covered = e.end
        }
        guard covered == bytes.count - dataStart else {
            throw .uncoveredData(
                file: name,
                reason: "\(bytes.count - dataStart - covered) bytes after the last tensor belong to no tensor")
        }
        let tensors = entries.map { e in
            let scalars = (0..<e.shape.elementCount).map { i -> Float in
                let p = dataStart + e.begin + 4 * i
                return Float(
                    bitPattern: UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(
                        bytes[p + 3]) << 24)
            }
            return (name: e.name, tensor: Tensor(shape: e.shape, scalars: scalars))
        }
        return Contents(tensors: tensors, metadata: metadata)
    }
}

extension Encodable {
    /// Compact JSON with sorted keys, for safetensors metadata (which holds strings only).
    package func metadataJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

extension Model {
    /// Every parameter and buffer by name, in model order: what a safetensors file of the model holds.
    public var stateDict: [(name: String, tensor: Tensor)] { tensors.map { ($0.name, $0.tensor) } }

    /// Loads every parameter and buffer from `contents`; names and shapes must match the model exactly
    /// (extra tensors are ignored only when their names start with one of `ignoringPrefixes`).
    public func load(_ contents: Safetensors.Contents, file: String, ignoringPrefixes: [String] = [])
        throws(SafetensorsError)
    {
        for (name, _) in contents.tensors where !tensors.contains(where: { $0.name == name }) {
            if !ignoringPrefixes.contains(where: { name.hasPrefix($0) }) {
                throw .unexpectedTensor(file: file, tensor: name)
            }
        }
        for i in tensors.indices {
            guard let tensor = contents.tensor(named: tensors[i].name) else {
                throw .missingTensor(file: file, tensor: tensors[i].name)
            }
            guard tensor.shape == tensors[i].tensor.shape else {
                throw .shape(
                    file: file, tensor: tensors[i].name, expected: tensors[i].tensor.shape, found: tensor.shape)
            }
            tensors[i].tensor = tensor
        }
    }
}
