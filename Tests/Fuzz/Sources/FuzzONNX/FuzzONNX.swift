import DSG
import Foundation
import FuzzDriver

/// libFuzzer's entry: any bytes as an ONNX file. A typed error is the expected outcome; a trap is a bug.
let fuzzONNX: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
    guard let data else { return 0 }
    _ = try? ONNXImport.model(from: Data(bytes: data, count: size), file: "fuzz.onnx")
    return 0
}

@_cdecl("FuzzONNX_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzONNX)
}
