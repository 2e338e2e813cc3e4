import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// Synchronised BatchNorm: two executors each holding half of a batch, sharing it over a ``ThreadGroup``, give
/// what one executor holding the whole batch gives.
@Suite("Data-parallel shares of a batch")
struct DataParallelTests {
    /// BatchNorm, LeakyReLU, then class-conditional BatchNorm with non-trivial per-class scales and shifts.
    static func model() throws -> Model {
        var b = ModelBuilder(seed: 3)
        let x = b.input("x", [3, 4, 4]), label = b.input("label", [])
        var h = try b.activation(try b.batchNorm(x, "bn"), .leakyReLU(slope: 0.2), "act")
        h = try b.add(ConditionalBatchNormOp(channels: 3, classes: 2), "cbn", [h, label])
        let model = b.finish(outputs: [h])
        var random = SeededRandom(seed: 4)
        try model.setTensor(named: "cbn.weight", to: random.normalTensor([2, 3], mean: 1, standardDeviation: 0.5))
        try model.setTensor(named: "cbn.bias", to: random.normalTensor([2, 3]))
        try model.setTensor(named: "bn.weight", to: random.normalTensor([3], mean: 1, standardDeviation: 0.5))
        return model
    }

    /// The output, the input gradient and the parameter gradients (summed over the shares) of a training-mode
    /// pass on samples `range` of a batch of 6, and the running statistics after it.
    static func pass(_ range: Range<Int>, group: DataParallelGroup?) throws -> [String: [Float]] {
        var random = SeededRandom(seed: 5)
        let x = random.normalTensor([6, 3, 4, 4], mean: 0.5, standardDeviation: 2)
        let labels = Tensor(shape: [6], scalars: [0, 1, 1, 0, 1, 0])
        let seed = random.normalTensor([6, 3, 4, 4])
        let model = try model()
        let executor = try GraphExecutor(model: model, batchSize: range.count)
        executor.inputsRequireGradient = [true, false]
        if let group { executor.shareBatch(of: 6, over: group) }
        try executor.setInput(0, from: x, samples: range)
        try executor.setInput(1, from: labels, samples: range)
        try executor.run(training: true)
        executor.zeroGradients()
        let size = 3 * 16
        let g = executor.gradient(of: model.outputs[0])
        for i in g.indices { g[i] = seed.scalars[range.lowerBound * size + i] }
        executor.backward()
        var result = [
            "output": executor.output().scalars,
            "input gradient": Array(executor.gradient(of: ValueID(index: 0))),
        ]
        for name in ["bn.weight", "bn.bias", "cbn.weight", "cbn.bias"] {
            var gradient = try executor.parameterGradient(named: name).scalars
            gradient.withUnsafeMutableBufferPointer { group?.sum($0) }
            result[name + " gradient"] = gradient
        }
        for name in ["bn.running_mean", "bn.running_var", "cbn.running_mean", "cbn.running_var"] {
            result[name] = model.stateDict.first { $0.name == name }!.tensor.scalars
        }
        return result
    }

    @Test func twoSharesOfABatchNormaliseAndBackpropagateAsTheWholeBatch() throws {
        let whole = try Self.pass(0..<6, group: nil)
        let shares = try ThreadGroup.run(size: 2) { group in
            try Self.pass(group.share(of: 6), group: group)
        }
        for (name, expected) in whole {
            if name == "output" || name == "input gradient" {
                expectClose(shares[0][name]! + shares[1][name]!, expected, rtol: 1e-5, atol: 1e-5, name)
            } else {
                for rank in 0..<2 { expectClose(shares[rank][name]!, expected, rtol: 1e-5, atol: 1e-5, name) }
            }
        }
    }

    @Test func aMemberThatThrowsDoesNotLeaveTheOthersWaiting() {
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try ThreadGroup.run(size: 2) { group in
                if group.rank == 1 { throw Stop() }
                var values = [1.0]
                values.withUnsafeMutableBufferPointer { group.sum($0) }
            }
        }
    }

    @Test func sharesAreContiguousAndDifferByAtMostOne() throws {
        let ranges = try ThreadGroup.run(size: 3) { group in (0..<3).map { group.share(of: 8, rank: $0) } }
        #expect(ranges[0] == [0..<3, 3..<6, 6..<8])
        #expect(try ThreadGroup.run(size: 3) { $0.share(of: 2) } == [0..<1, 1..<2, 2..<2])
    }
}
