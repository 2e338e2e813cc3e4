/// MobileNetV2 (Sandler et al. 2018) for 224x224 inputs, width multiplier 1: a 3x3 stem, 17 inverted residual
/// blocks (1x1 expansion, 3x3 depthwise, 1x1 linear projection, ReLU6, identity shortcut where shapes allow),
/// a 1x1 convolution to 1280 channels, global average pooling and a linear classifier.
public enum MobileNetV2 {
    /// (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
    static let settings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    /// Builds the network with weights initialised from `seed` (PyTorch's defaults), named
    /// `stem.conv.weight`, `blocks.<i>.expand.bn.running_mean`, `head.conv.weight`, `classifier.bias` and so on (not
    /// torchvision's names; no dropout). 52 BatchNorm layers. Throws a ``GraphError`` if `input` is too small.
    public static func build(input: Shape = [3, 224, 224], classes: Int = 1000, seed: UInt64 = 0) throws(GraphError)
        -> Model
    {
        var b = ModelBuilder(seed: seed)
        let x = b.input("image", input)
        var h = try convBN(&b, x, "stem", outChannels: 32, kernel: 3, stride: 2, relu6: true)
        var channels = 32, index = 0
        for setting in settings {
            for repeatIndex in 0..<setting.n {
                b.prefix = "blocks.\(index)."
                let stride = repeatIndex == 0 ? setting.s : 1
                let hidden = channels * setting.t
                var y = h
                if setting.t != 1 { y = try convBN(&b, y, "expand", outChannels: hidden, kernel: 1, relu6: true) }
                y = try convBN(
                    &b, y, "depthwise", outChannels: hidden, kernel: 3, stride: stride, groups: hidden, relu6: true)
                y = try convBN(&b, y, "project", outChannels: setting.c, kernel: 1, relu6: false)
                h = (stride == 1 && channels == setting.c) ? try b.addValues([h, y], "add") : y
                channels = setting.c
                index += 1
            }
        }
        b.prefix = ""
        h = try convBN(&b, h, "head", outChannels: 1280, kernel: 1, relu6: true)
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "classifier", outFeatures: classes)])
    }

    private static func convBN(
        _ b: inout ModelBuilder, _ x: ValueID, _ name: String, outChannels: Int, kernel: Int, stride: Int = 1,
        groups: Int = 1, relu6: Bool
    ) throws(GraphError) -> ValueID {
        var h = try b.conv2d(
            x, name + ".conv", outChannels: outChannels, kernel: kernel, stride: stride, padding: kernel / 2,
            groups: groups)
        h = try b.batchNorm(h, name + ".bn")
        return relu6 ? try b.activation(h, .relu6, name + ".relu6") : h
    }
}
