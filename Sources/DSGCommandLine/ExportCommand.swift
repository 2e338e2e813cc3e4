import ArgumentParser
import DSG
import Foundation

/// `dsg export`: a model as an ONNX file that onnxruntime (or any ONNX runtime) runs.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a model as ONNX (Float32, BatchNorm kept; the batch size free).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: ArgumentHelp("The ONNX file to write.", valueName: "path"))
    var output = "model.onnx"

    func run() throws {
        try reportingErrors {
            let model = try modelOptions.load()
            try ONNXExport.write(model, to: URL(fileURLWithPath: output))
            say(
                "wrote \(output) (\(modelOptions.name), \(model.nodes.count) nodes, \(model.parameterCount) parameters)"
            )
        }
    }
}
