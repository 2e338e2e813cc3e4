import Foundation

/// Why an experiment folder cannot be continued.
struct ExperimentStateError: Error, CustomStringConvertible {
    let file: String, reason: String
    var description: String { "\(file): \(reason); use another --output" }
}

/// The finished measurements of an experiment, kept in a JSON file that is rewritten (atomically) after each
/// one, so that an interrupted run continues where it stopped.
///
/// The settings that decide every measurement are stored under their own keys (`settings/<name>`): a folder
/// made with other settings is refused rather than mixed with this run's results.
final class ExperimentState {
    private let url: URL
    private var values: [String: Double]

    init(url: URL, settings: [String: Int]) throws {
        self.url = url
        values = (try? JSONDecoder().decode([String: Double].self, from: Data(contentsOf: url))) ?? [:]
        if values["settings"] != nil {
            throw ExperimentStateError(
                file: url.path, reason: "written by an older swift-dsg, whose settings key could not tell runs apart")
        }
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
            let key = "settings/" + name
            if let saved = values[key], saved != Double(value) {
                throw ExperimentStateError(
                    file: url.path, reason: "holds results for \(name) \(Int(saved)), not \(value)")
            }
            values[key] = Double(value)
        }
        // Written at once, so the folder belongs to these settings before the first result is in.
        try writeJSON(values, to: url.path)
    }

    /// A setting that is text (a model's fingerprint) as a number the state file can hold exactly: FNV-1a of its
    /// bytes, kept to the 53 bits a JSON number carries.
    static func key(_ text: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash & (1 << 53 - 1))
    }

    /// A finished measurement, if there is one.
    subscript(key: String) -> Double? { values[key] }

    /// The measurement under `key`: read back if finished, otherwise computed and stored at once.
    func measured(_ key: String, _ compute: () throws -> Double) throws -> Double {
        if let value = values[key] { return value }
        let value = try compute()
        values[key] = value
        try writeJSON(values, to: url.path)
        return value
    }
}
