/// MobileNetV2 (Sandler et al. 2018): a 3x3 stem, 17 inverted residual blocks (1x1 expansion, 3x3 depthwise,
/// 1x1 linear projection, ReLU6, identity shortcut where shapes allow), a 1x1 convolution to 1280 channels, global
/// average pooling and a linear classifier.
public enum MobileNetV2 {
    /// Where the network halves its feature map.
    public enum Strides: String, Sendable, CaseIterable {
        /// The paper's, for 224x224 images: stride 2 in the stem and at the start of the 24, 32, 64 and 160-channel
        /// stages (a 7x7 map at the end).
        case imageNet
        /// For 28x28 and 32x32 images (as CIFAR ports of the network do): the stem and the 24-channel stage keep
        /// stride 1, so a 28x28 image ends as a 4x4 map instead of 1x1.
        case smallImages
    }

    /// The width multipliers ``build(input:classes:width:strides:seed:)`` is meant for: (0, 4].
    public static func isValidWidth(_ width: Double) -> Bool { width > 0 && width <= 4 }

    /// (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
    static let settings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    /// Builds the network with weights initialised from `seed` (PyTorch's defaults), named
    /// `stem.conv.weight`, `blocks.<i>.expand.bn.running_mean`, `head.conv.weight`, `classifier.bias` and so on (not
    /// torchvision's names; no dropout). 52 BatchNorm layers. Throws a ``GraphError`` if `input` is too small.
    ///
    /// - Parameter width: the width multiplier: the stem's and every block's channels are scaled by it and
    ///   rounded to a multiple of 8 (never below 90% of the scaled value); the head keeps 1280 channels unless
    ///   `width` > 1. The same rule as the paper's reference code, so the parameter counts equal torchvision's.
    public static func build(
        input: Shape = [3, 224, 224], classes: Int = 1000, width: Double = 1, strides: Strides = .imageNet,
        seed: UInt64 = 0
    ) throws(GraphError) -> Model {
        var b = ModelBuilder(seed: seed)
        let x = b.input("image", input)
        var channels = channelCount(32, width: width)
        var h = try convBN(
            &b, x, "stem", outChannels: channels, kernel: 3, stride: strides == .imageNet ? 2 : 1, relu6: true)
        var index = 0
        for setting in settings {
            let outChannels = channelCount(setting.c, width: width)
            let firstStride = strides == .smallImages && setting.c == 24 ? 1 : setting.s
            for repeatIndex in 0..<setting.n {
                b.prefix = "blocks.\(index)."
                let stride = repeatIndex == 0 ? firstStride : 1
                let hidden = channels * setting.t
                var y = h
                if setting.t != 1 { y = try convBN(&b, y, "expand", outChannels: hidden, kernel: 1, relu6: true) }
                y = try convBN(
                    &b, y, "depthwise", outChannels: hidden, kernel: 3, stride: stride, groups: hidden, relu6: true)
                y = try convBN(&b, y, "project", outChannels: outChannels, kernel: 1, relu6: false)
                h = (stride == 1 && channels == outChannels) ? try b.addValues([h, y], "add") : y
                channels = outChannels
                index += 1
            }
        }
        b.prefix = ""
        h = try convBN(&b, h, "head", outChannels: channelCount(1280, width: max(1, width)), kernel: 1, relu6: true)
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "classifier", outFeatures: classes)])
    }

    /// `channels` × `width` rounded to the nearest multiple of 8, raised by 8 where rounding lost more than 10%.
    static func channelCount(_ channels: Int, width: Double) -> Int {
        let scaled = Double(channels) * width
        var rounded = max(8, Int(scaled + 4) / 8 * 8)
        if Double(rounded) < 0.9 * scaled { rounded += 8 }
        return rounded
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
