import DSGCore
import Foundation

/// Checkpoints of a QAT run: written atomically after every epoch, they hold everything a resumed run needs
/// (generator and Adam moments, student and SGD momentum, the random-number state, history, configuration),
/// so a killed run continues as if it had not stopped.
extension QATTrainer {
    /// The format key of a QAT checkpoint; checkpoints written before it existed have none and are version 1.
    static let checkpointFormat = "swift-dsg QAT checkpoint 1"

    private struct Metadata: Codable {
        var configuration: QATConfiguration
        var history: [QATEpoch]
        var random: SeededRandom
        var teacher: String
        var rangesInitialized: Bool
    }

    func save(to url: URL) throws {
        var tensors = generator.model.stateDict.map { ("generator." + $0.name, $0.tensor) }
        tensors += adam.state(of: generator.model, prefix: "generator.adam.")
        tensors += student.model.stateDict.map { ("student." + $0.name, $0.tensor) }
        tensors += sgd.state(of: student.model, prefix: "student.sgd.")
        let metadata = Metadata(
            configuration: configuration, history: history, random: random, teacher: fingerprint,
            rangesInitialized: student.ranges != nil)
        let json = String(decoding: try JSONEncoder().encode(metadata), as: UTF8.self)
        try Safetensors.write(
            Safetensors.Contents(tensors: tensors, metadata: ["format": Self.checkpointFormat, "qat": json]), to: url)
    }

    func resume(from url: URL) throws {
        let file = url.lastPathComponent
        let contents = try Safetensors.read(url)
        if let format = contents.metadata["format"], format != Self.checkpointFormat {
            throw QATError.checkpointMismatch(file: file, reason: "format '\(format)', not '\(Self.checkpointFormat)'")
        }
        guard let json = contents.metadata["qat"],
            let saved = try? JSONDecoder().decode(Metadata.self, from: Data(json.utf8))
        else {
            throw QATError.checkpointMismatch(file: file, reason: "not a QAT checkpoint")
        }
        guard saved.teacher == fingerprint else {
            throw QATError.checkpointMismatch(file: file, reason: "a different teacher model")
        }
        var other = saved.configuration
        other.epochs = configuration.epochs  // more epochs may be asked for later
        if other != configuration {
            let a = saved.configuration, b = configuration
            let reason =
                a.label != b.label
                ? "\(a.label), not \(b.label)"
                : a.batchSize != b.batchSize
                    ? "batch size \(a.batchSize), not \(b.batchSize)"
                    : a.generatorLoss != b.generatorLoss
                        ? "the \(a.generatorLoss.rawValue) loss, not \(b.generatorLoss.rawValue)"
                        : a.activationRange != b.activationRange
                            ? "activation ranges from \(a.activationRange.rawValue), not \(b.activationRange.rawValue)"
                            : "other settings"
            throw QATError.checkpointMismatch(file: file, reason: reason)
        }
        func part(_ prefix: String) -> Safetensors.Contents {
            Safetensors.Contents(
                tensors: contents.tensors.compactMap {
                    $0.name.hasPrefix(prefix) ? (String($0.name.dropFirst(prefix.count)), $0.tensor) : nil
                })
        }
        try generator.model.load(part("generator."), file: file, ignoringPrefixes: ["adam."])
        try adam.restoreState(contents, of: generator.model, prefix: "generator.adam.", file: file)
        try student.model.load(part("student."), file: file, ignoringPrefixes: ["sgd."])
        try sgd.restoreState(contents, of: student.model, prefix: "student.sgd.", file: file)
        if saved.rangesInitialized { student.adoptSavedRanges() }
        history = saved.history
        random = saved.random
    }
}
