import DSG
import Foundation
import FuzzDriver

/// libFuzzer's entry: any bytes as a gzip IDX file of rank 1 or 3 (the first byte picks), and the pair of
/// image and label files Fashion-MNIST reading combines.
let fuzzIDX: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
    guard let data else { return 0 }
    guard size > 0 else { return 0 }
    let bytes = Data(bytes: data + 1, count: size - 1)
    let rank = data[0] % 2 == 0 ? 1 : 3
    _ = try? IDXFile.parse(bytes, rank: rank, name: "fuzz")
    if let inflated = try? Gzip.decompress(bytes), let file = try? IDXFile.parse(inflated, rank: rank, name: "fuzz") {
        _ = try? FashionMNIST.combine(images: file, imagesName: "fuzz", labels: file, labelsName: "fuzz")
    }
    return 0
}

@_cdecl("FuzzIDX_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzIDX)
}
