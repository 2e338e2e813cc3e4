internal import CZlib
import Foundation

/// Why a gzip stream could not be decompressed.
public enum GzipError: Error, Equatable, CustomStringConvertible {
    /// The data is shorter than a gzip header and trailer (18 bytes) or does not start with the signature `1f 8b`.
    case notGzip
    /// zlib rejected the stream; the string is zlib's message or status.
    case corrupt(String)
    /// The input ended before the end of the compressed stream.
    case truncated

    /// What is wrong with the data, in words.
    public var description: String {
        switch self {
        case .notGzip: return "not a gzip file (it does not start with the gzip signature 1f 8b)"
        case .corrupt(let reason): return "corrupt gzip data (\(reason))"
        case .truncated: return "the gzip data ends early"
        }
    }
}

/// gzip compression and decompression through zlib.
public enum Gzip {
    /// The bytes of a gzip file holding `data` (zlib's default compression level).
    public static func compress(_ data: Data) -> Data {
        var stream = z_stream()
        // 16 + MAX_WBITS: write a gzip header and trailer; 8 is zlib's default memory level.
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            preconditionFailure("zlib could not start a deflate stream")
        }
        defer { deflateEnd(&stream) }
        var output = Data(count: Int(deflateBound(&stream, uLong(data.count))) + 32)
        var input = data
        let produced = input.withUnsafeMutableBytes { (inp: UnsafeMutableRawBufferPointer) -> Int in
            output.withUnsafeMutableBytes { (out: UnsafeMutableRawBufferPointer) -> Int in
                stream.next_in = inp.bindMemory(to: Bytef.self).baseAddress
                stream.avail_in = uInt(inp.count)
                stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(out.count)
                // The output holds deflateBound bytes, so one call finishes the stream.
                let status = deflate(&stream, Z_FINISH)
                precondition(status == Z_STREAM_END, "zlib deflate did not finish (status \(status))")
                return out.count - Int(stream.avail_out)
            }
        }
        output.count = produced
        return output
    }

    /// The decompressed bytes of a whole gzip file.
    public static func decompress(_ data: Data) throws(GzipError) -> Data {
        guard data.count >= 18, data[data.startIndex] == 0x1f, data[data.startIndex + 1] == 0x8b else { throw .notGzip }
        // The trailer's last four bytes hold the uncompressed size modulo 2^32: a good first capacity, but only a
        // hint (a corrupt trailer must not make us reserve 4 GB), so it is capped at 64 times the input.
        let trailer = data.suffix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let sizeHint = min(trailer, 64 * data.count)
        // 16 + MAX_WBITS: expect a gzip header and trailer rather than a raw zlib stream.
        return try inflateStream(data, windowBits: 16 + MAX_WBITS, sizeHint: sizeHint)
    }

    /// The decompressed bytes of a zlib stream (the format inside PNG files).
    public static func decompressZlib(_ data: Data) throws(GzipError) -> Data {
        try inflateStream(data, windowBits: MAX_WBITS, sizeHint: 4 * data.count)
    }

    private static func inflateStream(_ data: Data, windowBits: Int32, sizeHint: Int) throws(GzipError) -> Data {
        var output = Data(count: max(sizeHint, 1024))
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt("zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var status: Int32 = Z_OK
        var produced = 0
        let inputCount = data.count
        let result: GzipError? = data.withUnsafeBytes { (input: UnsafeRawBufferPointer) -> GzipError? in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress!)
            stream.avail_in = uInt(inputCount)
            while status == Z_OK {
                if produced == output.count { output.count *= 2 }
                status = output.withUnsafeMutableBytes { (out: UnsafeMutableRawBufferPointer) -> Int32 in
                    stream.next_out = out.bindMemory(to: Bytef.self).baseAddress! + produced
                    stream.avail_out = uInt(out.count - produced)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    produced = out.count - Int(stream.avail_out)
                    return s
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 { return .truncated }
                if status == Z_BUF_ERROR { status = Z_OK }  // output full: grow and go on
            }
            if status == Z_STREAM_END { return nil }
            if status == Z_DATA_ERROR { return .corrupt(stream.msg.map { String(cString: $0) } ?? "data error") }
            return .corrupt("zlib status \(status)")
        }
        if let result { throw result }
        output.count = produced
        return output
    }
}
