import DSGKernels
import DSGTestSupport
import Foundation
import Testing

@Suite("BLAS and LAPACK wrappers")
struct BLASTests {
    /// Naive row-major reference: C = alpha * op(A) op(B) + beta * C, in Double.
    static func reference(
        _ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float], beta: Float,
        c: [Float]
    ) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = ta == .none ? a[i * k + p] : a[p * m + i]
                    let bv = tb == .none ? b[p * n + j] : b[j * k + p]
                    s += Double(av) * Double(bv)
                }
                out[i * n + j] = Float(Double(alpha) * s + Double(beta) * Double(c[i * n + j]))
            }
        }
        return out
    }

    @Test(
        "sgemm matches naive loops for every transpose case",
        arguments: [
            (Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed),
        ])
    func sgemm(ta: Transpose, tb: Transpose) {
        let (m, n, k) = (5, 7, 3)
        let a = (0..<(m * k)).map { Float(($0 * 37) % 11) - 5 }
        let b = (0..<(k * n)).map { Float(($0 * 53) % 13) - 6 }
        let c0 = (0..<(m * n)).map { Float($0 % 5) }
        var c = c0
        BLAS.sgemm(
            ta, tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: ta == .none ? k : m, b: b, ldb: tb == .none ? n : k,
            beta: 2, c: &c, ldc: n)
        #expect(c == Self.reference(ta, tb, m: m, n: n, k: k, alpha: 0.5, a: a, b: b, beta: 2, c: c0))
    }

    @Test func twoByTwo() {
        var c = [Float](repeating: 0, count: 4)
        BLAS.sgemm(.none, .none, m: 2, n: 2, k: 2, a: [1, 2, 3, 4], lda: 2, b: [5, 6, 7, 8], ldb: 2, c: &c, ldc: 2)
        #expect(c == [19, 22, 43, 50])
    }

    @Test("symmetric eigensolver: known spectra, ascending, orthonormal vectors")
    func eigen() throws {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with vectors (1, -1)/√2 and (1, 1)/√2.
        let e = try LAPACK.symmetricEigen([2, 1, 1, 2] as [Double], n: 2)
        #expect(abs(e.values[0] - 1) < 1e-12 && abs(e.values[1] - 3) < 1e-12)
        #expect(abs(abs(e.vectors[0]) - 0.5.squareRoot()) < 1e-12)
        #expect(abs(e.vectors[0] + e.vectors[2]) < 1e-12)  // first eigenvector ∝ (1, -1)

        // A tridiagonal matrix with 2 on the diagonal and -1 beside it: λ_j = 2 - 2 cos(jπ / (n + 1)).
        let n = 8
        var t = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            t[i * n + i] = 2
            if i + 1 < n {
                t[i * n + i + 1] = -1
                t[(i + 1) * n + i] = -1
            }
        }
        let te = try LAPACK.symmetricEigen(t, n: n)
        let spectrum = (1...n).map { 2 - 2 * cos(Double($0) * .pi / Double(n + 1)) }
        expectClose(te.values, spectrum, rtol: 0, atol: 1e-12, "eigenvalues")
        // V diag(λ) Vᵀ reconstructs the matrix.
        let reconstructed = (0..<(n * n)).map { ik in
            let (i, k) = (ik / n, ik % n)
            return (0..<n).reduce(0.0) { $0 + te.vectors[i * n + $1] * te.values[$1] * te.vectors[k * n + $1] }
        }
        expectClose(reconstructed, t, rtol: 0, atol: 1e-12, "V diag(λ) Vᵀ")
        let f = try LAPACK.symmetricEigen([4, 0, 0, 9] as [Float], n: 2)
        #expect(f.values == [4, 9])
    }

    @Test func reusableSolverAgreesWithTheConvenienceCall() throws {
        let n = 6
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { m[i * n + j] = 1 / Double(i + j + 1) } }  // Hilbert matrix
        let reference = try LAPACK.symmetricEigen(m, n: n)
        let solver = SymmetricEigenSolver(n: n)
        for _ in 0..<2 {  // reuse: the second solve must not depend on the first
            try m.withUnsafeBufferPointer { try solver.solve($0.baseAddress!) }
            expectClose(Array(solver.values), reference.values, rtol: 0, atol: 1e-14, "eigenvalues")
            // Each eigenvector is defined up to its sign.
            expectClose(solver.vectors.map(abs), reference.vectors.map(abs), rtol: 0, atol: 1e-10, "|eigenvectors|")
        }
        m[3] = .infinity
        #expect(throws: LAPACKError.nonFiniteInput(routine: "dsyevd")) {
            try m.withUnsafeBufferPointer { try solver.solve($0.baseAddress!) }
        }
    }

    @Test func eigenRejectsNonFinite() {
        #expect(throws: LAPACKError.nonFiniteInput(routine: "dsyevd")) {
            try LAPACK.symmetricEigen([1, .nan, .nan, 1] as [Double], n: 2)
        }
    }
}
