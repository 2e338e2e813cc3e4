import DSG
import Foundation
import Testing

@Suite("QAT generator loss terms")
struct QATLossTests {
    /// Activations `[N, C, plane]` with per-channel offsets, so the statistics differ from the targets.
    static func activation(_ n: Int, _ c: Int, _ plane: Int) -> [Float] {
        var rng = SeededRandom(seed: 21)
        return (0..<(n * c * plane)).map { i in rng.normal() * 1.5 + Float((i / plane) % c) * 0.3 }
    }

    @Test(arguments: [BatchStatisticsAlignment.Form.slack, .gdfq])
    func gradientMatchesFiniteDifferences(form: BatchStatisticsAlignment.Form) {
        let (n, c, plane) = (3, 4, 5)
        var term = BatchStatisticsAlignment(
            form: form, targetMean: [0.1, -0.2, 0.3, 0.0], targetVariance: [1, 2, 0.5, 1.5], meanMargin: [0.05],
            varianceMargin: [0.1])
        let x = Self.activation(n, c, plane)
        var gradient = [Float](repeating: 0, count: x.count)
        let value = x.withUnsafeBufferPointer { a in
            gradient.withUnsafeMutableBufferPointer {
                term.evaluate(a, batch: n, plane: plane, gradient: $0, gradientScale: 2)
            }
        }
        #expect(value > 0.1)
        func loss(_ y: [Float]) -> Double {
            var scratch = [Float](repeating: 0, count: y.count)
            return 2
                * y.withUnsafeBufferPointer { a in
                    scratch.withUnsafeMutableBufferPointer {
                        term.evaluate(a, batch: n, plane: plane, gradient: $0, gradientScale: 1)
                    }
                }
        }
        let h: Float = 1e-2
        for i in stride(from: 0, to: x.count, by: 7) {
            var plus = x, minus = x
            plus[i] += h
            minus[i] -= h
            let numeric = (loss(plus) - loss(minus)) / Double(2 * h)
            #expect(
                abs(Double(gradient[i]) - numeric) <= 1e-4 + 1e-3 * abs(numeric),
                "\(form) [\(i)]: \(gradient[i]) vs \(numeric)")
        }
    }

    @Test func slackIsZeroInsideTheMarginsAndGDFQIsTheMeanSquaredError() {
        let (n, plane) = (2, 3)
        // Channel 0: mean 3, variance 3; channel 1: mean 1, variance 1.
        let x: [Float] = [0, 3, 3, 0, 0, 3, 3, 3, 6, 1, 1, 1]
        var scratch = [Float](repeating: 0, count: x.count)
        func value(_ term: inout BatchStatisticsAlignment) -> Double {
            x.withUnsafeBufferPointer { a in
                scratch.withUnsafeMutableBufferPointer {
                    term.evaluate(a, batch: n, plane: plane, gradient: $0, gradientScale: 1)
                }
            }
        }
        var inside = BatchStatisticsAlignment(
            form: .slack, targetMean: [2.9, 1.2], targetVariance: [3.4, 1], meanMargin: [0.25], varianceMargin: [0.5])
        #expect(value(&inside) == 0)
        #expect(scratch.allSatisfy { $0 == 0 })
        var hinge = BatchStatisticsAlignment(
            form: .slack, targetMean: [2.5, 1], targetVariance: [3, 1], meanMargin: [0.25], varianceMargin: [0.5])
        #expect(abs(value(&hinge) - 0.0625) < 1e-9)  // (|3 − 2.5| − 0.25)²
        var gdfq = BatchStatisticsAlignment(form: .gdfq, targetMean: [2.5, 1], targetVariance: [3, 3])
        #expect(abs(value(&gdfq) - (0.25 / 2 + 4 / 2)) < 1e-9)  // mean over channels of 0.5² and of 2²
    }
}
