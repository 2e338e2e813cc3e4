internal import COpenBLAS

/// Errors reported by LAPACK routines.
public enum LAPACKError: Error, Equatable, CustomStringConvertible {
    /// LAPACK's `info < 0`: argument number `argument` had an illegal value (a bug on our side or a bad size).
    case illegalArgument(routine: String, argument: Int)
    /// LAPACK's `info > 0`: the algorithm failed to converge.
    case noConvergence(routine: String, info: Int)
    /// The matrix contained NaN or infinity, which LAPACK cannot decompose.
    case nonFiniteInput(routine: String)

    /// The routine's name and what went wrong, e.g. "dsyevd: failed to converge (info = 3)".
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

/// The real types LAPACK's symmetric eigensolver comes in: `ssyevd` for Float, `dsyevd` for Double.
public protocol LAPACKScalar: BinaryFloatingPoint, Sendable {
    /// The LAPACK routine's name, for errors.
    static var symmetricEigenRoutine: String { get }
    /// Calls the routine on the row-major `n x n` matrix `a` (overwritten by eigenvectors), eigenvalues into `w`.
    static func symmetricEigenInPlace(n: Int32, a: UnsafeMutablePointer<Self>, w: UnsafeMutablePointer<Self>) -> Int32
}

extension Float: LAPACKScalar {
    /// `ssyevd`, the single-precision divide-and-conquer solver.
    public static var symmetricEigenRoutine: String { "ssyevd" }
    /// Calls `LAPACKE_ssyevd` (row-major, eigenvectors, upper triangle) and returns its `info`.
    public static func symmetricEigenInPlace(n: Int32, a: UnsafeMutablePointer<Float>, w: UnsafeMutablePointer<Float>)
        -> Int32
    {
        LAPACKE_ssyevd(LAPACK_ROW_MAJOR, LAPACK.vectors, LAPACK.upper, n, a, max(n, 1), w)
    }
}

extension Double: LAPACKScalar {
    /// `dsyevd`, the double-precision divide-and-conquer solver.
    public static var symmetricEigenRoutine: String { "dsyevd" }
    /// Calls `LAPACKE_dsyevd` (row-major, eigenvectors, upper triangle) and returns its `info`.
    public static func symmetricEigenInPlace(n: Int32, a: UnsafeMutablePointer<Double>, w: UnsafeMutablePointer<Double>)
        -> Int32
    {
        LAPACKE_dsyevd(LAPACK_ROW_MAJOR, LAPACK.vectors, LAPACK.upper, n, a, max(n, 1), w)
    }
}

/// Typed wrappers over the LAPACK routines the package uses; `info` becomes a ``LAPACKError``.
public enum LAPACK {
    /// LAPACK's character flags: compute eigenvectors, read the upper triangle.
    fileprivate static let vectors = CChar(UInt8(ascii: "V")), upper = CChar(UInt8(ascii: "U"))

    /// Eigenvalues (ascending) and eigenvectors of the symmetric `n x n` row-major `matrix`; only its upper
    /// triangle is read. Uses `dsyevd` for Double (the routine DSG's correlation term runs, through
    /// `SymmetricEigenSolver`, which allocates once) and `ssyevd` for Float.
    public static func symmetricEigen<Scalar: LAPACKScalar>(_ matrix: [Scalar], n: Int) throws(LAPACKError)
        -> SymmetricEigen<Scalar>
    {
        precondition(matrix.count == n * n, "symmetricEigen: matrix must hold n * n elements.")
        let routine = Scalar.symmetricEigenRoutine
        // A plain loop: a key path here, in generic code, allocated once per element.
        for value in matrix where !value.isFinite { throw .nonFiniteInput(routine: routine) }
        var a = matrix
        var w = [Scalar](repeating: 0, count: n)
        let info = Scalar.symmetricEigenInPlace(n: Int32(n), a: &a, w: &w)
        // LAPACK's `info` becomes a Swift error here and in SymmetricEigenSolver.solve.
        if info < 0 { throw .illegalArgument(routine: routine, argument: Int(-info)) }
        if info > 0 { throw .noConvergence(routine: routine, info: Int(info)) }
        return SymmetricEigen(values: w, vectors: a)
    }
}

/// The symmetric eigensolver for repeated use on matrices of one size: every buffer, LAPACK's workspace
/// included, is allocated once (`dsyevd` through `LAPACKE_dsyevd_work`), so a loop that decomposes a matrix
/// per iteration allocates nothing.
public final class SymmetricEigenSolver {
    /// The matrix order: every ``solve(_:)`` takes an `n x n` matrix.
    public let n: Int
    /// After ``solve(_:)``: eigenvalues ascending, and eigenvectors row-major with column `k` for value `k`.
    public private(set) var values: UnsafeMutableBufferPointer<Double>
    /// After ``solve(_:)``: the eigenvectors, row-major `n x n`, column `k` (`vectors[i * n + k]`) for `values[k]`.
    public private(set) var vectors: UnsafeMutableBufferPointer<Double>
    private let work: UnsafeMutableBufferPointer<Double>
    private let integerWork: UnsafeMutableBufferPointer<Int32>

    /// Allocates the value and vector buffers and asks `dsyevd` for its workspace sizes (the query's `info` is
    /// discarded: a failed query leaves a one-element workspace, which the first ``solve(_:)`` reports as an illegal
    /// argument).
    public init(n: Int) {
        self.n = n
        values = .allocate(capacity: max(n, 1))
        vectors = .allocate(capacity: max(n * n, 1))
        // A workspace query (lwork = liwork = -1) returns the sizes dsyevd wants.
        var workSize = 0.0, integerWorkSize: Int32 = 0
        _ = LAPACKE_dsyevd_work(
            LAPACK_COL_MAJOR, LAPACK.vectors, LAPACK.upper, Int32(n), vectors.baseAddress, Int32(max(n, 1)),
            values.baseAddress, &workSize, -1, &integerWorkSize, -1)
        work = .allocate(capacity: max(Int(workSize), 1))
        integerWork = .allocate(capacity: max(Int(integerWorkSize), 1))
    }

    deinit {
        values.deallocate()
        vectors.deallocate()
        work.deallocate()
        integerWork.deallocate()
    }

    /// Decomposes the symmetric row-major `n x n` `matrix` into ``values`` and ``vectors``.
    ///
    /// LAPACKE's row-major `_work` functions allocate a transposed copy on every call, so this calls the
    /// column-major one: a symmetric matrix reads the same either way (its lower triangle is read), and the
    /// column-major eigenvectors are transposed in place into the row-major layout.
    public func solve(_ matrix: UnsafePointer<Double>) throws(LAPACKError) {
        for i in 0..<(n * n) where !matrix[i].isFinite { throw .nonFiniteInput(routine: "dsyevd") }
        vectors.baseAddress!.update(from: matrix, count: n * n)
        let info = LAPACKE_dsyevd_work(
            LAPACK_COL_MAJOR, LAPACK.vectors, LAPACK.upper, Int32(n), vectors.baseAddress, Int32(max(n, 1)),
            values.baseAddress, work.baseAddress, Int32(work.count), integerWork.baseAddress, Int32(integerWork.count))
        if info < 0 { throw .illegalArgument(routine: "dsyevd", argument: Int(-info)) }
        if info > 0 { throw .noConvergence(routine: "dsyevd", info: Int(info)) }
        for i in 0..<n {
            for j in (i + 1)..<n { vectors.swapAt(i * n + j, j * n + i) }
        }
    }
}
