import DSG
import Foundation

/// Reading an ONNX file and running what it becomes: the embedded ResNet-20 exported from PyTorch
/// (Tests/DSGTests/Fixtures/onnx), its load time, and one DSG iteration on the import against the same network
/// built in Swift, alternated so the machine's drift affects both alike.
struct ONNXResult: Codable {
    let fileBytes: Int
    /// Median over the loads of reading, decoding and importing the file.
    let loadMilliseconds: Double
    let importedIterationMilliseconds: Double, builtIterationMilliseconds: Double
}

enum ONNXBenchmark {
    /// The fixture, found from this source file (the benchmark runs from a checkout).
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Tests/DSGTests/Fixtures/onnx/resnet20-fashion-mnist.onnx")

    static func measure(loads: Int, iterations: Int, rounds: Int) throws -> ONNXResult {
        let bytes = try Data(contentsOf: fixture).count
        var times: [Double] = []
        var imported = try Model.load(contentsOf: fixture)
        for _ in 0..<loads {
            let start = ContinuousClock.now
            imported = try Model.load(contentsOf: fixture)
            times.append((ContinuousClock.now - start).inSeconds)
        }
        let built = try DSG.defaultModel()
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize, configuration.iterations) = (64, 64, iterations)
        var importedTotal = 0.0, builtTotal = 0.0
        for _ in 0..<rounds {
            importedTotal += try DSG.generateSamples(from: imported, configuration: configuration).timing.total
            builtTotal += try DSG.generateSamples(from: built, configuration: configuration).timing.total
        }
        let n = Double(iterations * rounds)
        return ONNXResult(
            fileBytes: bytes, loadMilliseconds: 1000 * times.sorted()[times.count / 2],
            importedIterationMilliseconds: 1000 * importedTotal / n, builtIterationMilliseconds: 1000 * builtTotal / n)
    }
}
