import DSGCore
import DSGKernels

/// Sample correlation inhibition (Docs/DSG.md §4): the spectrum of the samples' cosine-similarity Gram matrix is
/// pulled toward a reference spectrum, which de-correlates the samples.
///
/// ```
/// Φ̂ = rows of the flattened images, L2-normalised       S = Φ̂ Φ̂ᵀ  (N x N)
/// λ = eigenvalues of S (ascending)                     L = 1e-4 · mean_k (λ_k − λr_k)²
/// ```
///
/// The gradient flows through the eigenvalues only (`∂λ_k/∂S = v_k v_kᵀ`); eigenvector derivatives blow up for
/// the nearly equal eigenvalues of nearly orthogonal samples, which is exactly this regime. All in Float64.
/// An instance holds every buffer for one batch and image size, so a generation loop allocates nothing.
public final class CorrelationInhibition {
    /// The loss scale of the official code.
    public static let scale = 1e-4

    /// The spectrum the samples' spectrum is pulled toward.
    public enum Reference: Sendable {
        /// All ones: perfectly uncorrelated samples.
        case identity
        /// The spectrum of a fresh batch of N(0, 1) images, as the official code draws it every iteration.
        case gaussian
        /// Given eigenvalues, ascending.
        case values([Double])
    }

    /// Images per batch `N` and values per flattened image `D = C * H * W`.
    public let batch: Int, dimension: Int
    private var rows: [Double], norms: [Double], gram: [Double], gramGradient: [Double], row: [Double],
        reference: [Double]
    /// Random bits of a block of the Gaussian reference batch, two draws per value.
    private var bits = [UInt64](repeating: 0, count: 2 * 8_192)
    private let solver: SymmetricEigenSolver

    /// Allocates every buffer, the eigensolver's included, for batches of `batch` images of `dimension` values.
    public init(batch: Int, dimension: Int) {
        (self.batch, self.dimension) = (batch, dimension)
        rows = Array(repeating: 0, count: batch * dimension)
        norms = Array(repeating: 0, count: batch)
        gram = Array(repeating: 0, count: batch * batch)
        gramGradient = gram
        row = Array(repeating: 0, count: dimension)
        reference = Array(repeating: 1, count: batch)
        solver = SymmetricEigenSolver(n: batch)
    }

    /// Fills `rows` with a fresh Gaussian batch: the numbers `random.normal()` would give one by one. The bits
    /// are drawn in order, a block at a time, and their Box-Muller transforms (a logarithm and a cosine each:
    /// 6% of a ResNet-18 224x224 iteration on one core) are split over the cores.
    private func drawGaussianRows(_ random: inout SeededRandom) {
        let count = batch * dimension, block = bits.count / 2
        rows.withUnsafeMutableBufferPointer { rows in
            bits.withUnsafeMutableBufferPointer { bits in
                for start in stride(from: 0, to: count, by: block) {
                    let size = min(block, count - start)
                    for k in 0..<(2 * size) { bits[k] = random.next() }
                    Parallel.forEachChunk(
                        of: size, NormalJob(bits: UnsafePointer(bits.baseAddress!), rows: rows.baseAddress! + start))
                }
            }
        }
    }

    /// The eigenvalues of the last evaluated batch's Gram matrix, ascending.
    public var eigenvalues: UnsafeMutableBufferPointer<Double> { solver.values }

    /// The loss for `images` (`batch` rows of `dimension` values). When `gradient` is given, `gradientScale * dL/dx` is
    /// added to it.
    public func evaluate(
        _ images: UnsafeBufferPointer<Float>, reference kind: Reference, random: inout SeededRandom,
        gradient: UnsafeMutableBufferPointer<Float>? = nil, gradientScale weight: Double = 1
    ) throws(LAPACKError) -> Double {
        let (n, d) = (batch, dimension)
        precondition(images.count == n * d, "CorrelationInhibition: images must hold batch * dimension values.")
        switch kind {
        case .identity:
            for k in 0..<n { reference[k] = 1 }
        case .values(let values):
            precondition(values.count == n, "CorrelationInhibition: one reference eigenvalue per sample.")
            for k in 0..<n { reference[k] = values[k] }
        case .gaussian:
            drawGaussianRows(&random)
            try decompose()
            for k in 0..<n { reference[k] = solver.values[k] }
        }
        for i in 0..<(n * d) { rows[i] = Double(images[i]) }
        try decompose()
        let values = solver.values, vectors = solver.vectors
        var value = 0.0
        for k in 0..<n { value += (values[k] - reference[k]) * (values[k] - reference[k]) }
        value *= Self.scale / Double(n)
        guard let gradient else { return value }
        // dL/dS = Σ_k c_k v_k v_kᵀ with c_k = 2e-4 (λ_k − λr_k) / N.
        for i in 0..<(n * n) { gramGradient[i] = 0 }
        for k in 0..<n {
            let c = 2 * Self.scale * (values[k] - reference[k]) / Double(n)
            for i in 0..<n { for j in 0..<n { gramGradient[i * n + j] += c * vectors[i * n + k] * vectors[j * n + k] } }
        }
        // S = Φ̂Φ̂ᵀ with dS symmetric: dΦ̂ = 2 dS Φ̂. Through Φ̂ = Φ / |Φ|: dΦ = (dΦ̂ − Φ̂ (Φ̂ · dΦ̂)) / |Φ|.
        for i in 0..<n {
            for k in 0..<d { row[k] = 0 }
            for j in 0..<n where gramGradient[i * n + j] != 0 {
                let f = 2 * gramGradient[i * n + j]
                for k in 0..<d { row[k] += f * rows[j * d + k] }
            }
            var dot = 0.0
            for k in 0..<d { dot += row[k] * rows[i * d + k] }
            for k in 0..<d { gradient[i * d + k] += Float(weight * (row[k] - rows[i * d + k] * dot) / norms[i]) }
        }
        return value
    }

    /// Normalises `rows` in place (keeping the norms), forms their Gram matrix and decomposes it.
    private func decompose() throws(LAPACKError) {
        let (n, d) = (batch, dimension)
        for i in 0..<n {
            var s = 0.0
            for k in 0..<d { s += rows[i * d + k] * rows[i * d + k] }
            norms[i] = max(s.squareRoot(), 1e-12)
            for k in 0..<d { rows[i * d + k] /= norms[i] }
        }
        Self.gram(rows, n, d, into: &gram)
        try gram.withUnsafeBufferPointer { g throws(LAPACKError) in try solver.solve(g.baseAddress!) }
    }

    /// `Φ Φᵀ` of `n` rows of `d` values into `result` (`n * n`).
    static func gram(_ rows: [Double], _ n: Int, _ d: Int, into result: inout [Double]) {
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for k in 0..<d { s += rows[i * d + k] * rows[j * d + k] }
                result[i * n + j] = s
                result[j * n + i] = s
            }
        }
    }
}

/// Box-Muller transforms of drawn bits, two draws per value (a struct job: a closure would allocate per block).
private struct NormalJob: ChunkJob {
    let bits: UnsafePointer<UInt64>, rows: UnsafeMutablePointer<Double>

    func run(samples values: Range<Int>, chunk: Int) {
        for k in values { rows[k] = Double(SeededRandom.normal(bits: bits[2 * k], bits[2 * k + 1])) }
    }
}
