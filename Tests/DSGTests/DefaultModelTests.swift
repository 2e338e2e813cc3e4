import DSG
import Foundation
import Testing

@Suite("The embedded default model")
struct DefaultModelTests {
    @Test func loadsAndClassifiesTheFirst2000TestImages() throws {
        let model = try DSG.defaultModel()
        let test = try FashionMNIST.load(.test).prefix(2_000)
        let accuracy = try Evaluation.accuracy(of: model, on: test)
        #expect(accuracy >= 0.92, "top-1 \(accuracy) on the first 2,000 test images")
    }
}
