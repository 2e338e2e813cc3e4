import Foundation

/// An 8-bit image as a file holds it: grey (1 channel) or RGB (3 channels), row-major and interleaved,
/// `height * width * channels` bytes.
public struct DecodedImage: Sendable, Equatable {
    /// The size in pixels, and 1 (grey) or 3 (RGB) channels.
    public let width: Int, height: Int, channels: Int
    /// `height * width * channels` bytes, row by row, channels interleaved.
    public let pixels: [UInt8]

    /// Wraps pixels; a channel count other than 1 or 3, or a size mismatch, is a programmer error.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "DecodedImage: 1 (grey) or 3 (RGB) channels.")
        precondition(pixels.count == width * height * channels, "DecodedImage: pixel count does not match the size.")
        (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
    }

    /// The largest image decoded, in pixels (8192 x 8192, more than a 48-megapixel photo): a header claiming more
    /// is refused before any pixel memory is allocated, so a few crafted bytes cost at most 192 MB.
    public static let maximumPixels = 1 << 26

    /// Decodes a PNG or JPEG file (told apart by their signatures, not the file name). `name` is what errors call
    /// the file.
    public init(decoding data: Data, name: String) throws(ImageError) {
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = try PNG.decode(data, name: name)
        } else if data.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = try JPEG.decode(data, name: name)
        } else {
            throw .notAnImage(file: name)
        }
    }

    /// Reads and decodes a PNG or JPEG file.
    public init(contentsOf url: URL) throws(ImageError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .unreadable(file: url.path, reason: error.localizedDescription)
        }
        try self.init(decoding: data, name: url.path)
    }

    /// The same image with `channels` channels: grey is repeated into RGB, and RGB becomes grey by ITU-R 601
    /// luma with the fixed-point weights PIL's `convert("L")` uses, so grey models see what PyTorch pipelines feed.
    public func converted(toChannels target: Int) -> DecodedImage {
        precondition(target == 1 || target == 3, "DecodedImage: 1 (grey) or 3 (RGB) channels.")
        if target == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        if target == 3 {
            for i in 0..<n { (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = (pixels[i], pixels[i], pixels[i]) }
        } else {
            for i in 0..<n {
                let (r, g, b) = (UInt32(pixels[3 * i]), UInt32(pixels[3 * i + 1]), UInt32(pixels[3 * i + 2]))
                out[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
        }
        return DecodedImage(width: width, height: height, channels: target, pixels: out)
    }
}

/// What can go wrong reading a labelled image folder; every case names the file or folder.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case notAnImage(file: String)
    case corrupt(file: String, reason: String)
    case tooLarge(file: String, width: Int, height: Int)
    case tooSmall(file: String, width: Int, height: Int, crop: Int, inputWidth: Int, inputHeight: Int)
    case noImages(folder: String)
    case noLabel(file: String)
    case labelOutOfRange(file: String, label: Int, classes: Int)
    case unsupportedInput(shape: [Int])
    case invalidPreprocessing(String)

    /// The message the command line prints.
    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "cannot read \(file): \(reason)"
        case .notAnImage(let file): return "\(file) is neither a PNG nor a JPEG file (its first bytes are neither's)"
        case .corrupt(let file, let reason): return "\(file) is corrupt or truncated: \(reason)"
        case .tooLarge(let file, let width, let height):
            return "\(file) claims \(width)x\(height) pixels, more than the \(DecodedImage.maximumPixels) decoded"
        case .tooSmall(let file, let width, let height, let crop, let inputWidth, let inputHeight):
            return "\(file) is \(width)x\(height) pixels: its centre crop (\(crop) pixels high) is smaller than the "
                + "model's \(inputWidth)x\(inputHeight) input, and images are not enlarged (use larger images or a "
                + "larger crop fraction)"
        case .noImages(let folder):
            return "\(folder) holds no .png, .jpg or .jpeg images (directly, or in sub-folders named by class index)"
        case .noLabel(let file):
            return "\(file) has no class label: put it in a sub-folder named by its class index, or end its name "
                + "with _<class index> as foolbox does (imagenet_00_243.jpg)"
        case .labelOutOfRange(let file, let label, let classes):
            return "\(file) has label \(label), but the model has \(classes) classes (0..<\(classes))"
        case .unsupportedInput(let shape):
            return "image folders feed models whose input is [1 or 3 channels, height, width]; this one takes \(shape)"
        case .invalidPreprocessing(let reason): return "invalid preprocessing: \(reason)"
        }
    }
}
