import Foundation

/// Why an IDX file (the format of MNIST and Fashion-MNIST) could not be read. Every case names the file.
public enum IDXError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read from disk; `reason` is the system's message.
    case unreadable(file: String, reason: String)
    /// The file is not gzip-compressed.
    case notGzip(file: String)
    /// The gzip data could not be decompressed; `reason` says why.
    case corrupt(file: String, reason: String)
    /// The magic number is not that of an unsigned-byte IDX file with the expected number of dimensions.
    case badMagic(file: String, found: UInt32, expected: UInt32)
    /// The decompressed data is shorter than its header, or than the header's dimensions need.
    case truncated(file: String, expectedBytes: Int, actualBytes: Int)
    /// The decompressed data is longer than the header's dimensions need.
    case trailingBytes(file: String, expectedBytes: Int, actualBytes: Int)
    /// The file parsed, but its dimensions are not the expected ones (28x28 images for Fashion-MNIST).
    case wrongDimensions(file: String, found: [Int], expected: String)
    /// The image and label files of one split hold different numbers of entries.
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    /// A label is not in `0..<classes`; `index` is its position in the file.
    case labelOutOfRange(file: String, index: Int, label: Int, classes: Int)

    /// The file's name and what is wrong with it.
    public var description: String {
        switch self {
        case .unreadable(let f, let reason): return "\(f): cannot be read (\(reason))"
        case .notGzip(let f): return "\(f): not a gzip file (it does not start with the gzip signature 1f 8b)"
        case .corrupt(let f, let reason): return "\(f): \(reason)"
        case .badMagic(let f, let found, let expected):
            return
                "\(f): IDX magic number is 0x\(String(found, radix: 16)), "
                + "expected 0x\(String(format: "%08x", expected))"
        case .truncated(let f, let expected, let actual):
            return "\(f): truncated: the header promises \(expected) bytes, the file has \(actual)"
        case .trailingBytes(let f, let expected, let actual):
            return "\(f): \(actual - expected) unexpected bytes after the \(expected) the header describes"
        case .wrongDimensions(let f, let found, let expected):
            return "\(f): dimensions \(found), expected \(expected)"
        case .countMismatch(let images, let imageCount, let labels, let labelCount):
            return "\(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels"
        case .labelOutOfRange(let f, let index, let label, let classes):
            return "\(f): label \(label) at index \(index) is outside 0..<\(classes)"
        }
    }
}

/// One IDX file of unsigned bytes: its dimensions and its data.
public struct IDXFile {
    /// The sizes from the header, outermost first (`[count, 28, 28]` for images, `[count]` for labels).
    public let dimensions: [Int]
    /// The data after the header, one unsigned byte per element in row-major order.
    public let bytes: Data

    /// Magic numbers: two zero bytes, the type code (0x08 = unsigned byte), the number of dimensions.
    static func magic(dimensions: Int) -> UInt32 { 0x0000_0800 | UInt32(dimensions) }

    /// Reads a gzip-compressed IDX file of unsigned bytes with `rank` dimensions.
    public static func read(_ url: URL, rank: Int) throws(IDXError) -> IDXFile {
        let name = url.lastPathComponent
        let compressed: Data
        do { compressed = try Data(contentsOf: url) } catch {
            throw .unreadable(file: name, reason: (error as NSError).localizedDescription)
        }
        let data: Data
        do { data = try Gzip.decompress(compressed) } catch {
            if error == .notGzip { throw .notGzip(file: name) }
            throw .corrupt(file: name, reason: error.description)
        }
        return try parse(data, rank: rank, name: name)
    }

    /// Parses decompressed IDX bytes.
    public static func parse(_ data: Data, rank: Int, name: String) throws(IDXError) -> IDXFile {
        precondition(rank >= 1, "IDX.parse: the caller names a rank of at least 1 (1 for labels, 3 for images).")
        let bytes = [UInt8](data.prefix(4 + 4 * rank))
        func word(_ i: Int) -> UInt32 { bytes[4 * i..<4 * i + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= 4 else { throw .truncated(file: name, expectedBytes: headerSize, actualBytes: data.count) }
        guard word(0) == magic(dimensions: rank) else {
            throw .badMagic(file: name, found: word(0), expected: magic(dimensions: rank))
        }
        guard bytes.count == headerSize else {
            throw .truncated(file: name, expectedBytes: headerSize, actualBytes: data.count)
        }
        let dimensions = (1...rank).map { Int(word($0)) }
        // A corrupt header can claim more bytes than an Int holds: that is a truncated file, not a crash.
        let expected = headerSize + (Shape(dimensions).checkedElementCount ?? (Int.max - headerSize))
        guard data.count >= expected else {
            throw .truncated(file: name, expectedBytes: expected, actualBytes: data.count)
        }
        guard data.count == expected else {
            throw .trailingBytes(file: name, expectedBytes: expected, actualBytes: data.count)
        }
        return IDXFile(dimensions: dimensions, bytes: data.subdata(in: (data.startIndex + headerSize)..<data.endIndex))
    }
}
