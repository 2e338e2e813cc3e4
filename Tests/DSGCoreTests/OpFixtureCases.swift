import DSGCore
import DSGTestSupport
import Foundation

/// The golden cases of `Fixtures/ops.json` (see `generate_fixtures.py`), turned into one-node models.
enum OpFixtures {
    static let file = try! Fixture(named: "ops.json", in: .module)
    static var cases: Fixture { file["ops"] }
    static var names: [String] { cases.keys }

    /// A model whose graph inputs are the case's inputs (per-sample shapes) and whose one node is the case's op
    /// (named `op`), with the case's parameters loaded.
    static func model(_ name: String) throws -> (model: Model, inputs: [Tensor], training: Bool) {
        let c = cases[name]
        let inputs = c.array("inputs").map(Fixture.tensor)
        let config = c["config"]
        var b = ModelBuilder(seed: 1)
        let xs = inputs.enumerated().map { k, t in b.input("x\(k)", Shape(Array(t.shape.dimensions.dropFirst()))) }
        let perSample = b.model.shape(of: xs[0])
        let op: any GraphOperator
        switch name {
        case let n where n.hasPrefix("conv"):
            let k = Int(config.double("kernel"))
            let geometry = try ConvGeometry(
                inChannels: perSample[0], outChannels: Int(config.double("out_channels")), kernel: (k, k),
                stride: (Int(config.double("stride")), Int(config.double("stride"))),
                padding: (Int(config.double("padding")), Int(config.double("padding"))),
                dilation: (Int(config.double("dilation")), Int(config.double("dilation"))),
                groups: Int(config.double("groups")), input: (perSample[1], perSample[2]))
            op = Conv2dOp(geometry: geometry, bias: c["params"].has("bias"))
        case let n where n.hasPrefix("batchnorm"):
            op = BatchNormOp(
                channels: perSample[0], epsilon: Float(config.double("eps")),
                momentum: Float(config.double("momentum")),
                affine: c["params"].has("weight"))
        case "relu": op = ActivationOp(.relu)
        case "relu6": op = ActivationOp(.relu6)
        case "leaky_relu": op = ActivationOp(.leakyReLU(slope: Float(config.double("slope"))))
        case "tanh": op = ActivationOp(.tanh)
        case "sigmoid": op = ActivationOp(.sigmoid)
        case "hardsigmoid": op = ActivationOp(.hardSigmoid(alpha: 1 / 6, beta: 0.5))
        case "hardswish": op = ActivationOp(.hardSwish)
        case "channel_multiply": op = ChannelMultiplyOp()
        case "scale": op = ScaleOp(Float(config.double("factor")))
        case let n where n.hasPrefix("pad"):
            op = PadOp(
                top: Int(config.double("top")), bottom: Int(config.double("bottom")), left: Int(config.double("left")),
                right: Int(config.double("right")), value: Float(config.double("value")))
        case "clip":
            op = ActivationOp(.clip(lower: Float(config.double("lower")), upper: Float(config.double("upper"))))
        case let n where n.hasPrefix("bias"): op = BiasOp(channels: perSample[0])
        case "channel_add": op = ChannelAddOp()
        case let n where n.hasPrefix("maxpool") || n.hasPrefix("avgpool"):
            let (k, s, p) = (Int(config.double("kernel")), Int(config.double("stride")), Int(config.double("padding")))
            let window = try ConvGeometry(
                inChannels: perSample[0], outChannels: perSample[0], kernel: (k, k), stride: (s, s), padding: (p, p),
                groups: perSample[0], input: (perSample[1], perSample[2]))
            op = n.hasPrefix("max") ? MaxPool2dOp(window: window) as any GraphOperator : AvgPool2dOp(window: window)
        case "global_avgpool": op = GlobalAvgPoolOp()
        case "linear":
            let w = c["params"].tensor("weight")
            op = LinearOp(inFeatures: w.shape[1], outFeatures: w.shape[0])
        case "add": op = AddOp()
        case "multiply": op = MultiplyOp()
        case "concat": op = ConcatOp()
        case "upsample_nearest2x": op = UpsampleNearest2xOp()
        case "flatten": op = ReshapeOp([perSample.elementCount])
        case let n where n.hasPrefix("conditional_batchnorm"):
            op = ConditionalBatchNormOp(
                channels: perSample[0], classes: c["params"].tensor("weight").shape[0],
                epsilon: Float(config.double("eps")),
                momentum: Float(config.double("momentum")))
        case "embedding":
            let w = c["params"].tensor("weight")
            op = EmbeddingOp(classes: w.shape[0], dimension: w.shape[1])
        default:
            throw FixtureError.malformed("no Swift operator for fixture case '\(name)'")
        }
        let out = try b.add(op, "op", xs)
        let model = b.finish(outputs: [out])
        for key in c["params"].keys { try model.setTensor(named: "op." + key, to: c["params"].tensor(key)) }
        if c.has("running_mean_before") {
            try model.setTensor(named: "op.running_mean", to: c.tensor("running_mean_before"))
            try model.setTensor(named: "op.running_var", to: c.tensor("running_var_before"))
        }
        let training = (config.json["training"] as? Bool) ?? false
        return (model, inputs, training)
    }
}
