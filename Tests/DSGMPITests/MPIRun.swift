import DSGTestSupport
import Foundation
import Testing

/// Runs `dsg-mpi` (built beside this test binary) under `mpirun` on this machine.
enum MPIRun {
    struct Result {
        let status: Int32
        let output: String
        let errors: String
    }

    /// The executables built beside this test binary.
    static let executable = builtProduct("dsg-mpi"), probe = builtProduct("mpi-probe"), dsg = builtProduct("dsg")

    static func builtProduct(_ name: String) -> URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent(name)
    }

    static func outputs(in folder: TemporaryFolder) -> [String] {
        [
            "--output", folder.file("samples.safetensors").path, "--grid", folder.file("samples.png").path,
            "--report", folder.file("samples.json").path,
        ]
    }

    /// `mpirun -np ranks dsg-mpi command arguments...`; `meanwhile` runs while it does.
    static func launch(
        ranks: Int, _ arguments: [String], command: String = "generate", in folder: TemporaryFolder,
        meanwhile: () -> Void = {}
    ) throws -> Result {
        try launch(Array(repeating: arguments, count: ranks), command: command, in: folder, meanwhile: meanwhile)
    }

    /// The names of the files in `folder` (none if it does not exist).
    static func files(in folder: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    }

    /// The finished batches in a parts folder (a rank killed while writing may leave a temporary file beside them).
    static func batchFiles(in parts: URL) -> [String] {
        files(in: parts).filter { $0.hasPrefix("batch-") && $0.hasSuffix(".safetensors") }
    }

    /// The process ids of the `dsg-mpi` ranks whose arguments name a file in `folder` (from `/proc`).
    static func rankProcesses(in folder: TemporaryFolder) -> [pid_t] {
        files(in: URL(fileURLWithPath: "/proc")).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                let line = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/cmdline"))
            else { return nil }
            let arguments = line.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let isRank = arguments.first?.hasSuffix("/dsg-mpi") == true
            return isRank && arguments.contains { $0.hasPrefix(folder.url.path) } ? pid : nil
        }
    }

    /// `mpirun -np ranks program`.
    static func launch(_ program: URL, ranks: Int, in folder: TemporaryFolder) throws -> Result {
        try mpirun(["-np", "\(ranks)", program.path], in: folder)
    }

    /// One rank per argument list of `dsg-mpi command` (mpirun's `A : B` form), each in its working folder when
    /// given.
    static func launch(
        _ ranks: [[String]], command: String = "generate", in folder: TemporaryFolder,
        workingFolders: [String]? = nil, meanwhile: () -> Void = {}
    ) throws -> Result {
        var arguments: [String] = []
        for (i, rank) in ranks.enumerated() {
            if i > 0 { arguments.append(":") }
            arguments += ["-np", "1"] + (workingFolders.map { ["--wdir", $0[i]] } ?? [])
            arguments += [executable.path, command] + rank
        }
        return try mpirun(arguments, in: folder, meanwhile: meanwhile)
    }

    static func mpirun(_ arguments: [String], in folder: TemporaryFolder, meanwhile: () -> Void = {}) throws
        -> Result
    {
        guard let mpirun = find("mpirun") else {
            Issue.record("mpirun not found: `bash .ci/setup.sh` installs Open MPI (openmpi-bin)")
            return Result(status: -1, output: "", errors: "")
        }
        // As root mpirun needs --allow-run-as-root, and two ranks on a small machine --oversubscribe.
        return try run(
            mpirun, ["--allow-run-as-root", "--oversubscribe"] + arguments, in: folder, meanwhile: meanwhile)
    }

    /// Runs `program` in `folder`, with `environment` added to this process's.
    static func run(
        _ program: URL, _ arguments: [String], in folder: TemporaryFolder, environment: [String: String] = [:],
        meanwhile: () -> Void = {}
    ) throws -> Result {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = folder.url
        let (out, err) = (folder.file("stdout.txt"), folder.file("stderr.txt"))
        for file in [out, err] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        meanwhile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, output: try String(contentsOf: out, encoding: .utf8),
            errors: try String(contentsOf: err, encoding: .utf8))
    }

    static func find(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
