import ArgumentParser
import DSG
import Foundation

/// `dsg conformance`: every case of ONNX's own backend tests whose operators the importer claims, run and
/// compared; the table of Docs/ONNX.md. Exits 1 if any case fails (refusals are fine: they name what is missing).
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run ONNX's backend test cases of every operator the importer supports.",
        discussion: """
            Reads the cases of Debian's libonnx-testdata (node, pytorch-converted, pytorch-operator and simple), \
            keeps those whose graph uses only supported operators, and reports per operator how many pass, are \
            refused with a typed error, or fail. Exit code 1 when any case fails.
            """)

    /// What the report says before its table (the report is Docs/ONNX-conformance.md, checked by CI).
    static let header = """
        # ONNX conformance

        What `swift run -c release dsg conformance` reports on Debian's `libonnx-testdata` 1.12.0 (ONNX's backend
        test cases: `node`, `pytorch-converted`, `pytorch-operator`, `simple`), for every case whose graph uses
        only operators the importer supports (Docs/ONNX.md). A case's first input is the model's input and its
        other inputs become initializers; it passes when the output is within ONNX's tolerance
        (`atol 1e-7 + rtol 1e-3 · |expected|`), is refused when a typed error names what is not supported, and
        fails otherwise. A single-node case of an operator the importer evaluates on constants (the shape and
        padding arithmetic exporters write) runs a second time with every input a constant, as "<op> (folded)":
        integer results must then be exact. `.ci/run` reruns it and requires this file to be exactly what it
        reports, so it stays true; failed must be zero.


        """

    @Option(help: ArgumentHelp("Folder holding ONNX's test suites.", valueName: "folder"))
    var data = "/usr/share/libonnx-testdata/data"

    @Option(help: ArgumentHelp("Where to write the Markdown report.", valueName: "path"))
    var output = "onnx-conformance.md"

    func run() throws {
        try reportingErrors {
            let results = ONNXConformance.runSuites(at: URL(fileURLWithPath: data))
            guard !results.isEmpty else { throw ValidationError("no test cases under \(data)") }
            var rows: [String: (passed: Int, refused: Int, failed: Int)] = [:]
            for r in results {
                let key = r.operators.joined(separator: " + ")
                var row = rows[key] ?? (0, 0, 0)
                switch r.outcome {
                case .passed: row.passed += 1
                case .refused: row.refused += 1
                case .failed: row.failed += 1
                }
                rows[key] = row
            }
            var markdown = "| Operators | cases | passed | refused | failed |\n|---|---|---|---|---|\n"
            for (key, row) in rows.sorted(by: { $0.key < $1.key }) {
                markdown +=
                    "| \(key) | \(row.passed + row.refused + row.failed) | \(row.passed) | \(row.refused) | \(row.failed) |\n"
            }
            let totals = rows.values.reduce((0, 0, 0)) { ($0.0 + $1.passed, $0.1 + $1.refused, $0.2 + $1.failed) }
            markdown +=
                "| all | \(results.count) | \(totals.0) | \(totals.1) | \(totals.2) |\n\nRefused and failed cases:\n\n"
            for r in results {
                switch r.outcome {
                case .passed: continue
                case .refused(let why): markdown += "- refused \(r.suite)/\(r.name): \(why)\n"
                case .failed(let why): markdown += "- FAILED \(r.suite)/\(r.name): \(why)\n"
                }
            }
            try (Self.header + markdown).write(to: URL(fileURLWithPath: output), atomically: true, encoding: .utf8)
            say(markdown)
            say(
                "\(results.count) cases: \(totals.0) passed, \(totals.1) refused, \(totals.2) failed; report in \(output)"
            )
            if totals.2 > 0 { throw ExitCode.failure }
        }
    }
}
