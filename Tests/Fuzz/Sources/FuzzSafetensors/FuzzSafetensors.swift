import DSG
import Foundation
import FuzzDriver

/// libFuzzer's entry: any bytes as a safetensors file, decoded and, when that succeeds, loaded into a model.
let fuzzSafetensors: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
    guard let data else { return 0 }
    if let contents = try? Safetensors.decode(Data(bytes: data, count: size), name: "fuzz.safetensors"),
        let model = try? ResNet.resnet20()
    {
        try? model.load(contents, file: "fuzz.safetensors")
    }
    return 0
}

@_cdecl("FuzzSafetensors_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzSafetensors)
}
