internal import COpenBLAS

/// Errors reported by LAPACK routines.
public enum LAPACKError: Error, Equatable, CustomStringConvertible {
    /// LAPACK's `info < 0`: argument number `argument` had an illegal value (a bug on our side or a bad size).
    case illegalArgument(routine: String, argument: Int)
    /// LAPACK's `info > 0`: the algorithm failed to converge.
    case noConvergence(routine: String, info: Int)
    /// The matrix contained NaN or infinity, which LAPACK cannot decompose.
    case nonFiniteInput(routine: String)

    public var description: String {
        switch self {
        case .illegalArgument(let routine, let argument):
            return "\(routine): argument \(argument) had an illegal value"
        case .noConvergence(let routine, let info):
            return "\(routine): failed to converge (info = \(info))"
        case .nonFiniteInput(let routine):
            return "\(routine): the matrix contains NaN or infinity"
        }
    }
}

/// The eigen-decomposition of a real symmetric matrix.
public struct SymmetricEigen<Scalar: Sendable>: Sendable {
    /// Eigenvalues in ascending order.
    public var values: [Scalar]
    /// Eigenvectors, row-major `n x n`: column `k` (elements `vectors[i * n + k]`) belongs to `values[k]`.
    public var vectors: [Scalar]
}

public enum LAPACK {
    /// Eigenvalues and eigenvectors of the symmetric `n x n` row-major `matrix` (`dsyevd`, upper triangle read).
    public static func symmetricEigen(_ matrix: [Double], n: Int) throws(LAPACKError) -> SymmetricEigen<Double> {
        precondition(matrix.count == n * n, "symmetricEigen: matrix must hold n * n elements.")
        guard matrix.allSatisfy(\.isFinite) else { throw .nonFiniteInput(routine: "dsyevd") }
        var a = matrix
        var w = [Double](repeating: 0, count: n)
        let info = LAPACKE_dsyevd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(n), &a,
            Int32(max(n, 1)), &w)
        try check(info, routine: "dsyevd")
        return SymmetricEigen(values: w, vectors: a)
    }

    /// Single-precision variant (`ssyevd`).
    public static func symmetricEigen(_ matrix: [Float], n: Int) throws(LAPACKError) -> SymmetricEigen<Float> {
        precondition(matrix.count == n * n, "symmetricEigen: matrix must hold n * n elements.")
        guard matrix.allSatisfy(\.isFinite) else { throw .nonFiniteInput(routine: "ssyevd") }
        var a = matrix
        var w = [Float](repeating: 0, count: n)
        let info = LAPACKE_ssyevd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(n), &a,
            Int32(max(n, 1)), &w)
        try check(info, routine: "ssyevd")
        return SymmetricEigen(values: w, vectors: a)
    }

    /// The one place where LAPACK's `info` becomes a Swift error.
    private static func check(_ info: Int32, routine: String) throws(LAPACKError) {
        if info < 0 { throw .illegalArgument(routine: routine, argument: Int(-info)) }
        if info > 0 { throw .noConvergence(routine: routine, info: Int(info)) }
    }
}
