extension Model {
    /// A cheap identity of the model's tensors (their count, sum and a position-weighted sum, in Double), so a
    /// checkpoint or an experiment folder made with another model is refused. Two models with the same tensors
    /// in the same order have the same fingerprint.
    public var fingerprint: String { Self.fingerprint(of: tensors.map(\.tensor)) }

    /// The same identity of any tensors (a calibration set, say).
    public static func fingerprint(of tensors: [Tensor]) -> String {
        var sum = 0.0, weighted = 0.0, count = 0
        for t in tensors {
            t.withUnsafeBufferPointer { p in
                for (i, x) in p.enumerated() {
                    sum += Double(x)
                    weighted += Double(x) * Double(i % 97 + 1)
                }
            }
            count += t.elementCount
        }
        return "\(count) values, sum \(sum), weighted \(weighted)"
    }
}
