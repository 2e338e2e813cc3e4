import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGCommandLine

/// `ExperimentState`: the measurements of an interrupted experiment are kept and only ever mixed with
/// results of the same settings.
@Suite("Experiment state")
struct ExperimentStateTests {
    /// The settings `PTQExperiment` keys its state by.
    static func settings(count: Int, iterations: Int, testImages: Int = 500) -> [String: Int] {
        ["count": count, "iterations": iterations, "testImages": testImages]
    }

    @Test func aMeasurementIsComputedOnceAndReadBackByTheNextRun() throws {
        let folder = try TemporaryFolder("experiment-state")
        let url = folder.file("state.json")
        let state = try ExperimentState(url: url, settings: Self.settings(count: 2, iterations: 10))
        #expect(state["W4A4 dsg"] == nil)
        var calls = 0
        #expect(
            try state.measured("W4A4 dsg") {
                calls += 1
                return 0.625
            } == 0.625)
        #expect(
            try state.measured("W4A4 dsg") {
                calls += 1
                return 0.125
            } == 0.625)
        #expect(calls == 1)
        #expect(state["W4A4 dsg"] == 0.625)

        // A new run on the same folder finds the measurement and the settings in the file.
        let next = try ExperimentState(url: url, settings: Self.settings(count: 2, iterations: 10))
        #expect(next["W4A4 dsg"] == 0.625)
        #expect(
            try next.measured("W4A4 dsg") {
                calls += 1
                return 0.125
            } == 0.625)
        #expect(
            try next.measured("W8A8 dsg") {
                calls += 1
                return 0.875
            } == 0.875)
        #expect(calls == 2)
        let saved = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: url))
        #expect(
            saved == [
                "W4A4 dsg": 0.625, "W8A8 dsg": 0.875,
                "settings/count": 2, "settings/iterations": 10, "settings/testImages": 500,
            ])
    }

    @Test func aFailedMeasurementIsNotStored() throws {
        struct Stop: Error {}
        let folder = try TemporaryFolder("experiment-state")
        let state = try ExperimentState(
            url: folder.file("state.json"), settings: Self.settings(count: 2, iterations: 10))
        #expect(throws: Stop.self) { try state.measured("W4A4 dsg") { throw Stop() } }
        #expect(state["W4A4 dsg"] == nil)
        #expect(try state.measured("W4A4 dsg") { 0.5 } == 0.5)
    }

    /// The description of the error that opening `url` with `settings` throws.
    static func refusal(_ url: URL, _ settings: [String: Int]) throws -> String {
        let error = try #require(throws: ExperimentStateError.self) {
            try ExperimentState(url: url, settings: settings)
        }
        return error.description
    }

    @Test func otherSettingsAreRefusedByName() throws {
        let folder = try TemporaryFolder("experiment-state")
        let url = folder.file("state.json")
        _ = try ExperimentState(url: url, settings: Self.settings(count: 2, iterations: 10)).measured("a") { 1 }
        #expect(
            try Self.refusal(url, Self.settings(count: 3, iterations: 10))
                == "\(url.path): holds results for count 2, not 3; use another --output")
        #expect(
            try Self.refusal(url, Self.settings(count: 2, iterations: 20))
                == "\(url.path): holds results for iterations 10, not 20; use another --output")
        #expect(
            try Self.refusal(url, Self.settings(count: 2, iterations: 10, testImages: 10_000))
                == "\(url.path): holds results for testImages 500, not 10000; use another --output")
        // The refused runs changed nothing: the original settings still open the file.
        #expect(try ExperimentState(url: url, settings: Self.settings(count: 2, iterations: 10))["a"] == 1)
    }

    @Test func settingsAnOldSingleNumberConfusedAreToldApart() throws {
        // `(count * 100_000 + iterations) * 100_000 + testImages` is the same for both.
        func oldKey(_ count: Int, _ iterations: Int) -> Int { (count * 100_000 + iterations) * 100_000 + 500 }
        #expect(oldKey(1, 100_000) == oldKey(2, 0))

        let folder = try TemporaryFolder("experiment-state")
        let first = folder.file("first.json"), second = folder.file("second.json")
        _ = try ExperimentState(url: first, settings: Self.settings(count: 1, iterations: 100_000)).measured("a") { 1 }
        _ = try ExperimentState(url: second, settings: Self.settings(count: 2, iterations: 0)).measured("a") { 2 }
        #expect(
            try Self.refusal(first, Self.settings(count: 2, iterations: 0))
                == "\(first.path): holds results for count 1, not 2; use another --output")
        #expect(
            try Self.refusal(second, Self.settings(count: 1, iterations: 100_000))
                == "\(second.path): holds results for count 2, not 1; use another --output")
    }

    @Test func aFileWithTheLegacySettingsKeyIsRefused() throws {
        let folder = try TemporaryFolder("experiment-state")
        let url = folder.file("state.json")
        let legacy = ["settings": Double((2 * 100_000 + 10) * 100_000 + 500), "W4A4 dsg": 0.625]
        try JSONEncoder().encode(legacy).write(to: url)
        // Even with the settings the old number stands for: it cannot be checked, so it is not trusted.
        let reason = "written by an older swift-dsg, whose settings key could not tell runs apart"
        #expect(
            try Self.refusal(url, Self.settings(count: 2, iterations: 10))
                == "\(url.path): \(reason); use another --output")
        let after = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: url))
        #expect(after == legacy, "left as it was")
    }

    /// A model's fingerprint as a state key: FNV-1a 64 of the bytes, cut to 53 bits, the same on every run.
    @Test func textSettingsBecomeStableKeys() {
        #expect(ExperimentState.key("a") == Int(UInt64(0xaf63_dc4c_8601_ec8c) & (1 << 53 - 1)))
        #expect(ExperimentState.key("a") != ExperimentState.key("b"))
        #expect(ExperimentState.key(String(repeating: "x", count: 1000)) < 1 << 53)
    }

    /// The PTQ experiment keys its folder by the model too: another model's results are not read back.
    @Test func anExperimentFolderOfAnotherModelIsRefused() throws {
        let folder = try TemporaryFolder("experiment-model")
        let data = FashionMNIST.defaultDirectory
        _ = try PTQExperiment(
            model: try DSG.defaultModel(), data: data, folder: folder.url, count: 4, iterations: 1, seeds: [0],
            testImages: 10)
        let other = try ResNet.resnet20(input: [1, 28, 28], classes: 10, seed: 5)
        #expect(throws: ExperimentStateError.self) {
            try PTQExperiment(
                model: other, data: data, folder: folder.url, count: 4, iterations: 1, seeds: [0], testImages: 10)
        }
    }
}
