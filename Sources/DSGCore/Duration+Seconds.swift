extension Duration {
    /// The duration in seconds, for the timings that runs and benchmarks report.
    package var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
