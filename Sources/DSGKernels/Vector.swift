/// Explicit vectors for the element-wise loops we write ourselves. The package is compiled for baseline x86-64
/// (no flags can be passed), and there the compiler leaves many simple loops scalar: a select became a branch per
/// element, and an index computed as `row + i` kept its overflow check inside the loop. Written with these, the
/// loops run on SSE registers whatever the compiler decides, with the same operations per element, so their
/// results are bit-identical to the scalar loops'.
typealias Vector = SIMD8<Float>

@inline(__always) func loadVector(_ p: UnsafePointer<Float>) -> Vector {
    UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
}

@inline(__always) func loadVector(_ p: UnsafeMutablePointer<Float>) -> Vector {
    UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
}

@inline(__always) func storeVector(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
}

/// Calls `vector(i)` for each whole vector of `range` starting at `i`, then `scalar(i)` for the elements left.
@inline(__always) func forEachVector(_ range: Range<Int>, _ vector: (Int) -> Void, scalar: (Int) -> Void) {
    var i = range.lowerBound
    while i + Vector.scalarCount <= range.upperBound {
        vector(i)
        i += Vector.scalarCount
    }
    while i < range.upperBound {
        scalar(i)
        i += 1
    }
}
