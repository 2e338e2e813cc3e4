/// The dimensions of a tensor, outermost first (NCHW for images).
public struct Shape: Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The size of every axis, outermost first; empty for a scalar.
    public var dimensions: [Int]

    /// A shape with these dimensions, outermost first.
    public init(_ dimensions: [Int]) { self.dimensions = dimensions }
    /// Lets a shape be written as a literal: `[1, 28, 28]`.
    public init(arrayLiteral dimensions: Int...) { self.dimensions = dimensions }

    /// The number of axes (0 for a scalar).
    public var rank: Int { dimensions.count }
    /// The number of elements: the product of the dimensions (1 for a scalar).
    public var elementCount: Int { dimensions.reduce(1, *) }

    /// ``elementCount``, or nil when its product (left to right) overflows an `Int`: a shape read from a corrupt
    /// file, which must be refused before anything asks for its ``elementCount``.
    public var checkedElementCount: Int? {
        var count = 1
        for d in dimensions {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }  // exactly when `elementCount`'s product would trap
            count = product
        }
        return count
    }

    /// The size of axis `axis`, counted from the outermost (0).
    public subscript(axis: Int) -> Int { dimensions[axis] }

    /// Whether this is `[batch] + sample.dimensions` (checked without building that shape).
    public func isBatch(of sample: Shape, size batch: Int) -> Bool {
        guard rank == sample.rank + 1, dimensions[0] == batch else { return false }
        for i in 0..<sample.rank where dimensions[i + 1] != sample.dimensions[i] { return false }
        return true
    }

    /// This per-sample shape with a leading batch dimension.
    public func batched(_ batch: Int) -> Shape { Shape([batch] + dimensions) }

    /// The dimensions in brackets, e.g. `[128, 16, 28, 28]`.
    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }
}
