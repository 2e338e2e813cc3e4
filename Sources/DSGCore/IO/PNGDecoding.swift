internal import CPNG
import Foundation

extension PNG {
    /// Decodes a PNG file with libpng's simplified API into 8-bit grey or RGB (any bit depth, palette or
    /// interlacing; 16-bit samples are taken as sRGB and reduced to 8 bits, as PIL does; a gAMA chunk is honoured,
    /// which PIL ignores; transparent pixels are composited onto black, where PIL drops the alpha channel).
    static func decode(_ data: Data, name: String) throws(ImageError) -> DecodedImage {
        // libpng reads the compressed bytes again in png_image_finish_read: both calls stay inside one access.
        try data.withUnsafeBytes { bytes in
            Result { () throws(ImageError) in try decode(bytes, name: name) }
        }.get()
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws(ImageError) -> DecodedImage {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
            throw .corrupt(file: name, reason: message(of: image))
        }
        let (width, height) = (Int(image.width), Int(image.height))
        guard width * height <= DecodedImage.maximumPixels else {
            throw .tooLarge(file: name, width: width, height: height)
        }
        let channels = image.format & PNG_FORMAT_FLAG_COLOR != 0 ? 3 : 1
        image.format = channels == 3 ? PNG_FORMAT_RGB : png_uint_32(PNG_FORMAT_GRAY)
        image.flags |= png_uint_32(PNG_IMAGE_FLAG_16BIT_sRGB)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let finished = pixels.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, png_int_32(width * channels), nil)
        }
        guard finished != 0 else { throw .corrupt(file: name, reason: message(of: image)) }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// libpng's message for the last failure (a NUL-terminated char[64] inside the struct).
    private static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
