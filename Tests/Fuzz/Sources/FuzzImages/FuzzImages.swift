import DSG
import Foundation
import FuzzDriver

/// libFuzzer's entry: any bytes as a PNG or JPEG file (libpng and libjpeg-turbo behind `DecodedImage`), and
/// whatever decodes through the crop, resize and normalisation of a grey and a colour model input.
let fuzzImages: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
    guard let data else { return 0 }
    guard let image = try? DecodedImage(decoding: Data(bytes: data, count: size), name: "fuzz") else { return 0 }
    // Decoding is the part under test; resampling huge claimed images would only make the run slow.
    guard image.width * image.height <= 1 << 20 else { return 0 }
    let preprocessing = ImagePreprocessing(cropFraction: 0.875, mean: [0.5], standardDeviation: [0.25])
    _ = try? preprocessing.input(from: image, shape: [3, 8, 8], name: "fuzz")
    _ = try? preprocessing.input(from: image, shape: [1, 5, 7], name: "fuzz")
    return 0
}

@_cdecl("FuzzImages_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzImages)
}
