import ArgumentParser
import DSG
import Foundation
import Testing

@testable import dsg

@Suite("The dsg command line")
struct CommandLineTests {
    /// The exit code and message ArgumentParser gives for `arguments`, or nil if they parse.
    func failure(_ arguments: [String]) -> (code: Int32, message: String)? {
        do {
            _ = try DSGCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return (DSGCommand.exitCode(for: error).rawValue, DSGCommand.message(for: error))
        }
    }

    @Test func helpExplainsEveryOption() {
        let help = DSGCommand.helpMessage(for: TrainCommand.self)
        for option in ["--data", "--epochs", "--batch-size", "--learning-rate", "--weight-decay", "--seed", "--checkpoint", "--output"] {
            let line = help.split(separator: "\n").first { $0.contains(option) } ?? ""
            #expect(line.count > option.count + 12, "\(option) needs a help text: '\(line)'")
        }
        #expect(help.contains("resume"))
        let root = DSGCommand.helpMessage()
        for command in ["train", "evaluate", "generate", "quantize", "experiment", "demo"] { #expect(root.contains(command)) }
        let evaluate = DSGCommand.helpMessage(for: EvaluateCommand.self)
        #expect(evaluate.contains("--model") && evaluate.contains("--limit"))
    }

    @Test(arguments: [
        (["train", "--epochs", "0"], "invalid training settings: epochs must be at least 1"),
        (["train", "--batch-size", "0"], "invalid training settings: the batch size must be at least 1"),
        (["train", "--learning-rate", "0"], "invalid training settings: the learning rate must be positive"),
        (["train", "--seed", "minus-one"], "The value 'minus-one' is invalid for '--seed <seed>'"),
        (["evaluate", "--model"], "Missing value for '--model <path>'"),
        (["evaluate", "--model", "m.safetensors", "--limit", "0"], "--limit must be at least 1."),
        (["bogus"], "Unexpected argument 'bogus'"),
        (["demo", "--model", "m", "--iterations", "0"], "--iterations must be at least 1."),
        (["experiment", "ptq", "--model", "m", "--count", "1"], "--count must be at least 2."),
        (["quantize", "--model", "m", "--samples", "s", "--weight-bits", "9"], "weight bit-width 9 is outside 2...8"),
        (["quantize", "--method", "ptq"], "--method ptq needs --samples (make them with `dsg generate`) or --real-images, one of them."),
        (["quantize", "--samples", "s", "--real-images", "5"], "--method ptq needs --samples (make them with `dsg generate`) or --real-images, one of them."),
        (["quantize", "--real-images", "0"], "--real-images must be at least 1."),
        (["quantize", "--method", "qat", "--qat-batch-size", "1"], "invalid QAT configuration: the batch size must be at least 2 (batch statistics)"),
        (["experiment", "qat", "--bits", "9"], "invalid QAT configuration: weight bit-width 9 is outside 2...8"),
        (["experiment", "qat", "--losses"], "Missing value for '--losses <losses>'"),
        (["experiment", "qat", "--ptq-count", "1"], "--ptq-count must be at least 2 and --ptq-iterations at least 1."),
        (["experiment", "qat", "--test-images", "0"], "--test-images must be at least 1."),
        (["experiment", "qat", "--epochs", "0"], "invalid QAT configuration: epochs and iterations per epoch must be at least 1"),
        (["generate", "--model", "m", "--count", "0"], "invalid generation configuration: the sample count must be at least 1"),
        (["generate", "--model", "m", "--preset", "best"], "The value 'best' is invalid for '--preset <preset>'. Please provide one of 'gaussian', 'zeroQ', 'dsgCVPR', 'dsg' or 'dsgCode'."),
    ])
    func badArgumentsExitWithUsageErrors(arguments: [String], message: String) {
        let result = failure(arguments)
        #expect(result?.code == ExitCode.validationFailure.rawValue, "\(arguments)")
        #expect(result?.message == message, "\(arguments)")
    }

    @Test func runtimeErrorsExitWithOneAndAMessage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let broken = folder.appendingPathComponent("broken.safetensors")
        try Data([1, 2, 3]).write(to: broken)
        // No data folder: the IDX reader names the missing file.
        var command = try DSGCommand.parseAsRoot(["evaluate", "--model", broken.path, "--data", folder.path])
        #expect(throws: ExitCode.failure) { try command.run() }
        #expect(errorMessage(IDXError.notGzip(file: "x.gz")) == "error: x.gz: not a gzip file (it does not start with the gzip signature 1f 8b)")
        #expect(errorMessage(SafetensorsError.tooShort(file: "broken.safetensors", bytes: 3)).contains("broken.safetensors: 3 bytes is too short"))
    }
}

@Suite("dsg experiment and demo output")
struct ExperimentOutputTests {
    @Test func writesTablesReportPicturesAndResumes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-experiment-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func experiment(_ calibration: PTQConfiguration.ActivationCalibration = .meanSampleExtremes) throws -> PTQExperiment {
            try PTQExperiment(
                model: try DSG.defaultModel(), data: FashionMNIST.defaultDirectory, folder: folder, count: 4, iterations: 2,
                seeds: [0], testImages: 50, sources: ["zeroQ", "dsg", "real"], bitWidths: [(8, 8)], calibration: calibration)
        }
        try experiment().run(ablationSeeds: [], modelName: "embedded model")
        let report = try JSONDecoder().decode(
            PTQReport.self, from: Data(contentsOf: folder.appendingPathComponent("results.json")))
        #expect(report.testImages == 50 && report.calibrationImages == 4 && report.seeds == [0])
        #expect(report.fp32 > 0.8)
        #expect(Set(report.accuracy.keys) == ["zeroQ/W8A8", "dsg/W8A8", "real/W8A8"])
        #expect(report.accuracy["real/W8A8"]!.allSatisfy { $0 > 0.5 })
        #expect(Set(report.diversity.keys) == ["zeroQ", "dsg", "real"])
        let markdown = try String(contentsOf: folder.appendingPathComponent("results.md"), encoding: .utf8)
        #expect(markdown.contains("| dsg | "))
        for file in ["grid-dsg.png", "grid-zeroQ.png", "grid-real.png", "scatter.svg", "state.json", "samples-dsg-seed0.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file)")
        }
        // Run again: every number comes from the state file, so the report is the same.
        try experiment().run(ablationSeeds: [], modelName: "embedded model")
        let again = try JSONDecoder().decode(
            PTQReport.self, from: Data(contentsOf: folder.appendingPathComponent("results.json")))
        #expect(again.accuracy == report.accuracy && again.fp32 == report.fp32)

        // Another range estimate on the same samples: its own keys and files, the default results untouched.
        let samples = try Data(contentsOf: folder.appendingPathComponent("samples-dsg-seed0.safetensors"))
        try experiment(.minMax).run(ablationSeeds: [], modelName: "embedded model")
        let minMax = try JSONDecoder().decode(
            PTQReport.self, from: Data(contentsOf: folder.appendingPathComponent("results-minMax.json")))
        #expect(minMax.activationCalibration == .minMax && report.activationCalibration == .meanSampleExtremes)
        #expect(Set(minMax.accuracy.keys) == Set(report.accuracy.keys))
        #expect(try Data(contentsOf: folder.appendingPathComponent("samples-dsg-seed0.safetensors")) == samples, "samples reused")
        let state = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: folder.appendingPathComponent("state.json")))
        #expect(state["accuracy/dsg/seed0/W8A8/minMax"] != nil && state["accuracy/dsg/seed0/W8A8"] == report.accuracy["dsg/W8A8"]![0])
        let minMaxMarkdown = try String(contentsOf: folder.appendingPathComponent("results-minMax.md"), encoding: .utf8)
        #expect(minMaxMarkdown.contains("activation ranges: minMax"))
        #expect(try String(contentsOf: folder.appendingPathComponent("results.md"), encoding: .utf8) == markdown)

        // The ablation variants change what their names say, and nothing else.
        let e = try experiment(), dsg = e.generationConfiguration("dsg", seed: 0), zeroQ = e.generationConfiguration("zeroQ", seed: 0)
        #expect(e.generationConfiguration("dsg-priors", seed: 0).weights.totalVariation == 0 && e.generationConfiguration("dsg-priors", seed: 0).weights.l2 == 0)
        #expect(e.generationConfiguration("dsg-CE", seed: 0).weights.crossEntropy == 0 && dsg.weights.crossEntropy == 2)
        var priors = e.generationConfiguration("dsg-priors", seed: 0)
        (priors.weights.totalVariation, priors.weights.l2) = (dsg.weights.totalVariation, dsg.weights.l2)
        #expect(priors == dsg)
        #expect(e.generationConfiguration("dsg@0.5", seed: 0).marginQuantile == 0.5 && dsg.marginQuantile == 0.9)
        #expect(e.generationConfiguration("zeroQ+SDA", seed: 0).marginQuantile == 0.9 && zeroQ.marginQuantile == nil)
        #expect(e.generationConfiguration("zeroQ+SCI", seed: 0).correlation == .differentiable && zeroQ.correlation != .differentiable)
    }
}

@Suite("dsg experiment qat output")
struct QATExperimentOutputTests {
    @Test func writesTheTableReportAndGridsAndReadsFinishedRunsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-qat-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments = [
            "experiment", "qat", "--output", folder.path, "--bits", "4", "--epochs", "1", "--iterations-per-epoch", "2",
            "--qat-batch-size", "4", "--warmup-epochs", "0", "--ptq-count", "4", "--ptq-iterations", "2", "--test-images", "20",
        ]
        var command = try DSGCommand.parseAsRoot(arguments)
        try command.run()
        let report = try JSONDecoder().decode(
            QATExperimentCommand.Report.self, from: Data(contentsOf: folder.appendingPathComponent("results.json")))
        #expect(Set(report.qat.keys) == ["gdfq/W4A4", "dsg/W4A4"] && report.ptq.keys.sorted() == ["W4A4"])
        #expect(report.qat.values.allSatisfy { $0.epochs.count == 1 && $0.final > 0 })
        let markdown = try String(contentsOf: folder.appendingPathComponent("results.md"), encoding: .utf8)
        #expect(markdown.contains("| QAT, dsg generator | ") && markdown.contains("| PTQ, 4 DSG samples | "))
        for file in ["grids/dsg-W4A4-epoch1.png", "grids/gdfq-W4A4-epoch1.png", "dsg-W4A4.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file)")
        }
        // Run again: the finished runs come back from their checkpoints with the same numbers.
        var again = try DSGCommand.parseAsRoot(arguments)
        try again.run()
        let second = try JSONDecoder().decode(
            QATExperimentCommand.Report.self, from: Data(contentsOf: folder.appendingPathComponent("results.json")))
        #expect(second.qat.mapValues(\.final) == report.qat.mapValues(\.final))
    }
}
