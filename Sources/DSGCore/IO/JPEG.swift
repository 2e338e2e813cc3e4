internal import CTurboJPEG
import Foundation

/// JPEG files, decoded by libjpeg-turbo's TurboJPEG API with libjpeg's defaults (accurate integer IDCT, smooth
/// chroma upsampling), as PIL decodes them.
public enum JPEG {
    /// Decodes a baseline or progressive JPEG into 8-bit grey (grey files) or RGB (colour files). Any warning,
    /// such as data ending early, is an error: a truncated photo would otherwise decode with grey rows.
    static func decode(_ data: Data, name: String) throws(ImageError) -> DecodedImage {
        guard let handle = tjInitDecompress() else { throw .corrupt(file: name, reason: "TurboJPEG did not start") }
        defer { tjDestroy(handle) }
        func failure() -> ImageError { .corrupt(file: name, reason: String(cString: tjGetErrorStr2(handle))) }
        var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        let header = data.withUnsafeBytes { bytes in
            tjDecompressHeader3(
                handle, bytes.bindMemory(to: UInt8.self).baseAddress, UInt(bytes.count), &width, &height,
                &subsampling, &colorspace)
        }
        guard header == 0 else { throw failure() }
        guard Int(width) * Int(height) <= DecodedImage.maximumPixels else {
            throw .tooLarge(file: name, width: Int(width), height: Int(height))
        }
        let grey = colorspace == TJCS_GRAY.rawValue
        let channels = grey ? 1 : 3
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        let status = data.withUnsafeBytes { bytes in
            pixels.withUnsafeMutableBufferPointer { out in
                tjDecompress2(
                    handle, bytes.bindMemory(to: UInt8.self).baseAddress, UInt(bytes.count), out.baseAddress, width,
                    0, height, grey ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue, TJFLAG_STOPONWARNING)
            }
        }
        guard status == 0 else { throw failure() }
        return DecodedImage(width: Int(width), height: Int(height), channels: channels, pixels: pixels)
    }
}
