import DSGCore

/// Small models shared by the test targets.
public enum TestModels {
    /// A small BatchNorm network (two conv-BN-ReLU blocks, global pooling, a 3-class linear layer) for
    /// `[1, side, side]` inputs, with non-trivial running statistics from 20 training-mode passes on shifted,
    /// widened Gaussian data. Built the same way on every call (seeded).
    public static func batchNormNetwork(side: Int = 8) throws -> Model {
        var b = ModelBuilder(seed: 11)
        let x = b.input("image", [1, side, side])
        var h = try b.relu(
            try b.batchNorm(try b.conv2d(x, "conv1", outChannels: 4, kernel: 3, padding: 1), "bn1"), "relu1")
        h = try b.relu(
            try b.batchNorm(try b.conv2d(h, "conv2", outChannels: 6, kernel: 3, stride: 2, padding: 1), "bn2"), "relu2")
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return try withRunningStatistics(b.finish(outputs: [try b.linear(h, "fc", outFeatures: 3)]), seed: 12)
    }

    /// A small residual network for `[1, side, side]` inputs: a conv-BN-ReLU stem of 4 channels, one basic block
    /// (conv-BN-ReLU-conv-BN plus the identity, then ReLU), global pooling and a 3-class linear layer, with
    /// running statistics from 20 training-mode passes as ``batchNormNetwork(side:)``.
    public static func residualNetwork(side: Int = 8) throws -> Model {
        var b = ModelBuilder(seed: 13)
        let x = b.input("image", [1, side, side])
        let stem = try b.relu(
            try b.batchNorm(try b.conv2d(x, "conv1", outChannels: 4, kernel: 3, padding: 1), "bn1"), "relu1")
        b.prefix = "block."
        var h = try b.relu(
            try b.batchNorm(try b.conv2d(stem, "conv1", outChannels: 4, kernel: 3, padding: 1), "bn1"), "relu1")
        h = try b.batchNorm(try b.conv2d(h, "conv2", outChannels: 4, kernel: 3, padding: 1), "bn2")
        h = try b.relu(try b.addValues([h, stem], "add"), "relu2")
        b.prefix = ""
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return try withRunningStatistics(b.finish(outputs: [try b.linear(h, "fc", outFeatures: 3)]), seed: 14)
    }

    /// `model` after 20 training-mode passes on shifted, widened Gaussian batches of 16 drawn with `seed`, so that
    /// its BatchNorm running statistics are not the initial 0 and 1.
    private static func withRunningStatistics(_ model: Model, seed: UInt64) throws -> Model {
        let executor = try GraphExecutor(model: model, batchSize: 16)
        var random = SeededRandom(seed: seed)
        for _ in 0..<20 {
            try executor.forward(
                [random.normalTensor(model.inputs[0].shape.batched(16), mean: 0.5, standardDeviation: 2)],
                training: true)
        }
        return model
    }
}
