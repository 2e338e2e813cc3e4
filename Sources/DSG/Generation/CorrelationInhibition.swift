import DSGCore
import DSGKernels

/// Sample correlation inhibition (DSG-SPEC §4): the spectrum of the samples' cosine-similarity Gram matrix is
/// pulled toward a reference spectrum, which de-correlates the samples.
///
/// ```
/// Φ̂ = rows of the flattened images, L2-normalised       S = Φ̂ Φ̂ᵀ  (N x N)
/// λ = eigenvalues of S (ascending)                     L = 1e-4 · mean_k (λ_k − λr_k)²
/// ```
///
/// The gradient flows through the eigenvalues only (`∂λ_k/∂S = v_k v_kᵀ`); eigenvector derivatives blow up for
/// the nearly equal eigenvalues of nearly orthogonal samples, which is exactly this regime. All in Float64.
public enum CorrelationInhibition {
    /// The loss scale of the official code.
    public static let scale = 1e-4

    public struct Result: Sendable {
        public var value: Double
        /// Eigenvalues of the samples' Gram matrix, ascending.
        public var eigenvalues: [Double]
    }

    /// The loss for `images` (`batch` rows of `dimension` values) against `reference` eigenvalues (ascending;
    /// all ones is the spectrum of perfectly uncorrelated samples). When `gradient` is given, `scale * dL/dx`
    /// is added to it.
    public static func evaluate(
        images: UnsafeBufferPointer<Float>, batch n: Int, dimension d: Int, reference: [Double],
        gradient: UnsafeMutableBufferPointer<Float>? = nil, scale weight: Double = 1
    ) throws(LAPACKError) -> Result {
        precondition(images.count == n * d && reference.count == n, "CorrelationInhibition: shapes do not match.")
        // Row-normalised samples, in Double.
        var normalized = [Double](repeating: 0, count: n * d), norms = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var s = 0.0
            for k in 0..<d { s += Double(images[i * d + k]) * Double(images[i * d + k]) }
            norms[i] = max(s.squareRoot(), 1e-12)
            for k in 0..<d { normalized[i * d + k] = Double(images[i * d + k]) / norms[i] }
        }
        let gram = gramMatrix(normalized, n, d)
        let eigen = try LAPACK.symmetricEigen(gram, n: n)
        var value = 0.0
        for k in 0..<n { value += (eigen.values[k] - reference[k]) * (eigen.values[k] - reference[k]) }
        value *= scale / Double(n)
        if let gradient {
            // dL/dS = Σ_k c_k v_k v_kᵀ with c_k = 2e-4 (λ_k − λr_k) / N.
            var dS = [Double](repeating: 0, count: n * n)
            for k in 0..<n {
                let c = 2 * scale * (eigen.values[k] - reference[k]) / Double(n)
                for i in 0..<n { for j in 0..<n { dS[i * n + j] += c * eigen.vectors[i * n + k] * eigen.vectors[j * n + k] } }
            }
            // S = Φ̂Φ̂ᵀ with dS symmetric: dΦ̂ = 2 dS Φ̂. Through Φ̂ = Φ / |Φ|: dΦ = (dΦ̂ − Φ̂ (Φ̂ · dΦ̂)) / |Φ|.
            var row = [Double](repeating: 0, count: d)
            for i in 0..<n {
                for k in 0..<d { row[k] = 0 }
                for j in 0..<n where dS[i * n + j] != 0 {
                    let f = 2 * dS[i * n + j]
                    for k in 0..<d { row[k] += f * normalized[j * d + k] }
                }
                var dot = 0.0
                for k in 0..<d { dot += row[k] * normalized[i * d + k] }
                for k in 0..<d { gradient[i * d + k] += Float(weight * (row[k] - normalized[i * d + k] * dot) / norms[i]) }
            }
        }
        return Result(value: value, eigenvalues: eigen.values)
    }

    /// The eigenvalues (ascending) of the Gram matrix of `n` fresh N(0, 1) samples of `d` values: the
    /// reference spectrum of the official code.
    public static func gaussianReference(batch n: Int, dimension d: Int, using generator: inout SeededGenerator) throws(LAPACKError) -> [Double] {
        var normalized = [Double](repeating: 0, count: n * d)
        for i in 0..<n {
            var s = 0.0
            for k in 0..<d {
                let v = Double(generator.normal())
                normalized[i * d + k] = v
                s += v * v
            }
            for k in 0..<d { normalized[i * d + k] /= s.squareRoot() }
        }
        return try LAPACK.symmetricEigen(gramMatrix(normalized, n, d), n: n).values
    }

    /// `Φ Φᵀ` of `n` rows of `d` values.
    static func gramMatrix(_ rows: [Double], _ n: Int, _ d: Int) -> [Double] {
        var gram = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for k in 0..<d { s += rows[i * d + k] * rows[j * d + k] }
                gram[i * n + j] = s
                gram[j * n + i] = s
            }
        }
        return gram
    }
}
