import DSG

/// The calibration sources and ablation variants of `dsg experiment ptq`, by name: each is a generation
/// configuration one change away from a preset.
enum PTQVariants {
    /// The sources of the main table; "real" is training images, the others are synthetic.
    static let sources = ["gaussian", "zeroQ", "dsg", "dsgCode", "real"]

    /// The W4A4 ablation rows: ZeroQ plus each of DSG's three parts, all three, the `dsg` preset without its
    /// image priors or its cross-entropy (what the preset adds to the paper's terms), and the margin sweep.
    static let ablation = [
        "zeroQ", "zeroQ+SDA", "zeroQ+LSE", "zeroQ+SCI", "zeroQ+SDA+LSE+SCI", "dsg-priors", "dsg-CE", "dsg@0.5",
        "dsg@0.8",
        "dsg", "dsg@1.0",
    ]

    /// The generation configuration of a synthetic source or variant ("dsg@q": the dsg preset with margin
    /// quantile q). The names are this file's own, never user input.
    static func configuration(_ name: String) -> GenerationConfiguration {
        var c: GenerationConfiguration
        switch name {
        case "gaussian": c = GenerationConfiguration(preset: .gaussian)
        case "zeroQ": c = GenerationConfiguration(preset: .zeroQ)
        case "dsgCode": c = GenerationConfiguration(preset: .dsgCode)
        case "dsg": c = GenerationConfiguration(preset: .dsg)
        case "zeroQ+SDA":
            c = GenerationConfiguration(preset: .zeroQ)
            c.marginQuantile = 0.9
        case "zeroQ+LSE":
            c = GenerationConfiguration(preset: .zeroQ)
            c.enhancement = .paper(factor: 2)
        case "zeroQ+SCI":
            c = GenerationConfiguration(preset: .zeroQ)
            c.correlation = .differentiable
        case "zeroQ+SDA+LSE+SCI":
            c = GenerationConfiguration(preset: .dsgCVPR)
            c.correlation = .differentiable
        case "dsg-priors":
            c = GenerationConfiguration(preset: .dsg)
            (c.weights.totalVariation, c.weights.l2) = (0, 0)
        case "dsg-CE":
            c = GenerationConfiguration(preset: .dsg)
            c.weights.crossEntropy = 0
        default:
            guard name.hasPrefix("dsg@"), let q = Double(name.dropFirst(4)) else {
                preconditionFailure("unknown source \(name)")
            }
            c = GenerationConfiguration(preset: .dsg)
            c.marginQuantile = q
        }
        return c
    }
}
