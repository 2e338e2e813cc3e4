import ArgumentParser
import DSG
import Foundation

/// The `dsg` command: its subcommands are the package's command-line interface (the `dsg` executable runs it;
/// `dsg-mpi` reuses the options of `generate`).
public struct DSGCommand: ParsableCommand {
    /// The subcommands, version and help text.
    public static let configuration = CommandConfiguration(
        commandName: "dsg",
        abstract: "Data-free quantization by Diverse Sample Generation.",
        version: DSG.version,
        subcommands: [
            TrainCommand.self, EvaluateCommand.self, InspectCommand.self, GenerateCommand.self, QuantizeCommand.self,
            ExportCommand.self, ConformanceCommand.self,
            ExperimentCommand.self, DemoCommand.self,
        ])

    /// A command with no options of its own (ArgumentParser fills in the subcommand's).
    public init() {}
}

/// Runs `body`, turning the package's errors into a one-line message on standard error and exit code 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ExitCode { throw error } catch {
        FileHandle.standardError.write(Data((errorMessage(error) + "\n").utf8))
        throw ExitCode.failure
    }
}

/// Prints a line and flushes it, so that it reaches a log file when it happens, not when the run ends.
package func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Runs a library `validate()` for a command's `validate()`: a setting the library refuses becomes a usage
/// error (exit code 64) before anything runs, with the library's reason. One source of truth for every limit.
func validated(_ check: () throws -> Void) throws {
    do { try check() } catch { throw ValidationError(String(describing: error)) }
}

/// The limits of a run that generates `count` samples with `iterations` steps and measures their diversity:
/// the generation configuration's, and the two images a spread needs (``DiversityError``).
func validateSampleSet(count: Int, iterations: Int, measuresDiversity: Bool = true) throws {
    try validated {
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.iterations) = (count, iterations)
        try configuration.validate()
        if measuresDiversity && count < 2 { throw DiversityError.tooFewImages(count) }
    }
}

/// The line printed for an error: every error of the package describes itself, naming the file or node.
package func errorMessage(_ error: any Error) -> String { "error: \(error)" }

/// Options shared by the commands that read Fashion-MNIST.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Folder with the four Fashion-MNIST gzip IDX files.", valueName: "folder"))
    var data: String = FashionMNIST.defaultDirectory.path

    var directory: URL { URL(fileURLWithPath: data) }
}
