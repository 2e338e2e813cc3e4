// The library users import. It re-exports the neural core (tensors, graphs, layers, models, optimizers), so
// `import DSG` is the only import a user needs; the method itself (sample generation, quantization) is added
// here by the later issues.
@_exported import DSGCore

/// The namespace of swift-dsg's public entry points.
public enum DSG {
    /// The package version, for reports.
    public static let version = "0.1.0-dev"
}
