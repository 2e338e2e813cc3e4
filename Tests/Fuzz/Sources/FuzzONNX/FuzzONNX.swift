import DSG
import Foundation
import FuzzDriver

/// libFuzzer's entry: any bytes as an ONNX file, and what imports exported again. A typed error is the expected
/// outcome; a trap is a bug.
let fuzzONNX: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
    guard let data else { return 0 }
    // Whatever imports is exported again: the exporter must take every model the importer makes.
    if let model = try? ONNXImport.model(from: Data(bytes: data, count: size), file: "fuzz.onnx") {
        _ = try? ONNXExport.data(of: model)
    }
    return 0
}

@_cdecl("FuzzONNX_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzONNX)
}
