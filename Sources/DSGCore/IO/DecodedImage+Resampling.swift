extension DecodedImage {
    /// The `width` x `height` region whose top-left pixel is (`x`, `y`); the region must lie inside the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> DecodedImage {
        precondition(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= width && y + h <= height, "crop outside image")
        var out = [UInt8]()
        out.reserveCapacity(w * h * channels)
        for row in y..<(y + h) { out += pixels[((row * width + x) * channels)..<((row * width + x + w) * channels)] }
        return DecodedImage(width: w, height: h, channels: channels, pixels: out)
    }

    /// The image resampled to `width` x `height` with a bicubic filter (a = -0.5) widened by the reduction
    /// factor when shrinking, so downscaling averages instead of aliasing. It follows PIL's `Image.resize(...,
    /// BICUBIC)` step for step (a horizontal then a vertical pass, 8-bit rounding between them, 22-bit fixed-point
    /// weights), so images match what a PIL pipeline that crops, then resizes feeds a model: the same bytes for the photos
    /// the tests compare.
    public func resized(width w: Int, height h: Int) -> DecodedImage {
        precondition(w > 0 && h > 0, "resize to an empty image")
        var image = self
        if w != width { image = image.resampledRows(to: w) }
        if h != height { image = image.transposed().resampledRows(to: h).transposed() }
        return image
    }

    /// Each row resampled to `outWidth` pixels.
    private func resampledRows(to outWidth: Int) -> DecodedImage {
        let taps = Self.bicubicTaps(from: width, to: outWidth)
        var out = [UInt8](repeating: 0, count: outWidth * height * channels)
        let half = 1 << (Self.precisionBits - 1)
        for row in 0..<height {
            let source = row * width * channels, target = row * outWidth * channels
            for (x, tap) in taps.enumerated() {
                for c in 0..<channels {
                    var sum = half
                    for (k, weight) in tap.weights.enumerated() {
                        sum += Int(pixels[source + (tap.first + k) * channels + c]) * weight
                    }
                    out[target + x * channels + c] = UInt8(clamping: sum >> Self.precisionBits)
                }
            }
        }
        return DecodedImage(width: outWidth, height: height, channels: channels, pixels: out)
    }

    /// Rows become columns (so the vertical pass reuses the horizontal one).
    private func transposed() -> DecodedImage {
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels { out[(x * height + y) * channels + c] = pixels[(y * width + x) * channels + c] }
            }
        }
        return DecodedImage(width: height, height: width, channels: channels, pixels: out)
    }

    /// Fixed-point weights carry 22 fraction bits (PIL's choice for 8-bit images: sums of 255 x weights fit in
    /// 32 bits).
    private static let precisionBits = 22

    /// For each output pixel, the first source pixel it reads and the fixed-point weights of the pixels from there.
    private static func bicubicTaps(from inSize: Int, to outSize: Int) -> [(first: Int, weights: [Int])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2 * filterScale
        return (0..<outSize).map { i in
            let center = (Double(i) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let last = min(Int(center + support + 0.5), inSize)
            let raw = (first..<last).map { bicubic((Double($0) - center + 0.5) / filterScale) }
            let total = raw.reduce(0, +)
            let weights = raw.map { w -> Int in
                let v = (total != 0 ? w / total : w) * Double(1 << precisionBits)
                return Int(v < 0 ? v - 0.5 : v + 0.5)
            }
            return (first, weights)
        }
    }

    /// Keys' cubic convolution kernel with a = -0.5.
    private static func bicubic(_ t: Double) -> Double {
        let x = abs(t), a = -0.5
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
}
