/// Errors of training runs that a user's settings or files can cause.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A setting is out of range (the string says which), or the batch is larger than the training set.
    case invalidConfiguration(String)
    /// The checkpoint cannot be resumed: not this package's classifier checkpoint, incomplete metadata, or other
    /// settings.
    case checkpointMismatch(file: String, reason: String)
    /// The checkpoint could not be read, written or loaded into the model.
    case checkpoint(SafetensorsError)
    /// The loss became NaN or infinite at this epoch (from 0) and step (from 0); lowering the learning rate helps.
    case nonFiniteLoss(epoch: Int, step: Int)

    /// What went wrong, in words, naming the file or the setting.
    public var description: String {
        switch self {
        case .invalidConfiguration(let reason): return "invalid training settings: \(reason)"
        case .checkpointMismatch(let file, let reason): return "\(file) cannot be resumed: \(reason)"
        case .checkpoint(let error): return error.description
        case .nonFiniteLoss(let epoch, let step):
            return "the training loss became NaN or infinite at epoch \(epoch), step \(step); lower the learning rate"
        }
    }
}
