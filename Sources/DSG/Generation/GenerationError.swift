/// Why sample generation stopped.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// The model has no BatchNorm layer, so there are no statistics to generate from.
    case noBatchNorm
    /// A setting is out of range or does not fit the model (the string says which).
    case invalidConfiguration(String)
    /// A loss term (or the network's values, naming the node) became NaN or infinite at this batch and iteration
    /// (both from 0).
    case nonFinite(batch: Int, iteration: Int, term: String)
    /// A BatchNorm layer (or the image) whose input has one value per channel and sample (a BatchNorm1d after a
    /// linear layer, a 1x1 image): a per-sample deviation needs at least two.
    case noPlane(layer: String)

    /// What went wrong, in words, with a remedy where there is one.
    public var description: String {
        switch self {
        case .noBatchNorm:
            return
                "the model has no BatchNorm layer: DSG synthesises samples from BatchNorm statistics, so it needs them"
        case .invalidConfiguration(let reason):
            return "invalid generation configuration: \(reason)"
        case .noPlane(let layer):
            return "\(layer) has one value per channel and sample; DSG's per-sample statistics need a plane of at "
                + "least two values (a BatchNorm after a convolution, not after a linear layer)"
        case .nonFinite(let batch, let iteration, let term):
            return
                "batch \(batch), iteration \(iteration): the \(term) term became NaN or infinite; "
                + "lower the learning rate"
        }
    }
}
