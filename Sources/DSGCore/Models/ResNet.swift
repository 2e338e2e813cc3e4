/// ResNet builders on the graph layers, with PyTorch-style parameter names
/// (`conv1.weight`, `stage1.block0.bn1.running_mean`, `stage2.block0.shortcut.conv.weight`, `fc.bias`).
public enum ResNet {
    /// CIFAR-style ResNet-20 (He et al. 2016): a 3x3 stem with 16 channels, three stages of three basic blocks
    /// with 16, 32 and 64 channels (stride 2 at the start of stages 2 and 3, with a 1x1 convolution + BatchNorm
    /// shortcut there), global average pooling and a linear classifier. 21 BatchNorm layers.
    ///
    /// - Parameter input: per-sample input shape, `[1, 28, 28]` for Fashion-MNIST or `[3, 32, 32]` for CIFAR.
    public static func resnet20(input: Shape = [1, 28, 28], classes: Int = 10, seed: UInt64 = 0) throws(GraphError)
        -> Model
    {
        var b = ModelBuilder(seed: seed)
        let x = b.input("image", input)
        var h = try b.conv2d(x, "conv1", outChannels: 16, kernel: 3, padding: 1)
        h = try b.relu(try b.batchNorm(h, "bn1"), "relu1")
        var channels = 16
        for (stage, width) in [16, 32, 64].enumerated() {
            for block in 0..<3 {
                let stride = (stage > 0 && block == 0) ? 2 : 1
                b.prefix = "stage\(stage + 1).block\(block)."
                h = try basicBlock(&b, h, inChannels: channels, outChannels: width, stride: stride)
                channels = width
            }
        }
        b.prefix = ""
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "fc", outFeatures: classes)])
    }

    /// ImageNet ResNet-18: 7x7 stem, max pool, four stages of two basic blocks (64, 128, 256, 512 channels).
    public static func resnet18(input: Shape = [3, 224, 224], classes: Int = 1000, seed: UInt64 = 0) throws(GraphError)
        -> Model
    {
        var b = ModelBuilder(seed: seed)
        let x = b.input("image", input)
        var h = try b.conv2d(x, "conv1", outChannels: 64, kernel: 7, stride: 2, padding: 3)
        h = try b.relu(try b.batchNorm(h, "bn1"), "relu1")
        h = try b.maxPool(h, "maxpool", kernel: 3, stride: 2, padding: 1)
        var channels = 64
        for (stage, width) in [64, 128, 256, 512].enumerated() {
            for block in 0..<2 {
                b.prefix = "stage\(stage + 1).block\(block)."
                h = try basicBlock(
                    &b, h, inChannels: channels, outChannels: width, stride: (stage > 0 && block == 0) ? 2 : 1)
                channels = width
            }
        }
        b.prefix = ""
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "fc", outFeatures: classes)])
    }

    /// conv3x3-BN-ReLU-conv3x3-BN plus the identity (or a 1x1 conv + BN where the shape changes), then ReLU.
    static func basicBlock(
        _ b: inout ModelBuilder, _ x: ValueID, inChannels: Int, outChannels: Int, stride: Int
    ) throws(GraphError) -> ValueID {
        var h = try b.conv2d(x, "conv1", outChannels: outChannels, kernel: 3, stride: stride, padding: 1)
        h = try b.relu(try b.batchNorm(h, "bn1"), "relu1")
        h = try b.batchNorm(try b.conv2d(h, "conv2", outChannels: outChannels, kernel: 3, padding: 1), "bn2")
        var shortcut = x
        if stride != 1 || inChannels != outChannels {
            shortcut = try b.conv2d(x, "shortcut.conv", outChannels: outChannels, kernel: 1, stride: stride)
            shortcut = try b.batchNorm(shortcut, "shortcut.bn")
        }
        return try b.relu(try b.addValues([h, shortcut], "add"), "relu2")
    }
}
