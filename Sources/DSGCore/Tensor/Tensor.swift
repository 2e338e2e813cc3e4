import Foundation

/// A dense, row-major Float32 tensor with value semantics (copy on write).
///
/// Storage is one heap block with a stable address, so the executor and optimizers can work on raw pointers
/// without copying; any mutation through the public API first makes the storage unique.
public struct Tensor: Sendable, CustomStringConvertible {
    /// The tensor's dimensions, fixed when it is made; `elementCount` scalars follow them in row-major order.
    public let shape: Shape
    package private(set) var storage: TensorStorage

    /// A tensor of `shape` filled with `value`.
    public init(shape: Shape, repeating value: Float = 0) {
        self.shape = shape
        storage = TensorStorage(count: shape.elementCount)
        storage.pointer.initialize(repeating: value, count: shape.elementCount)
    }

    /// A tensor of `shape` holding `scalars` in row-major order.
    public init(shape: Shape, scalars: [Float]) {
        precondition(
            scalars.count == shape.elementCount,
            "Tensor(shape:scalars:): \(scalars.count) scalars do not fill shape \(shape).")
        self.shape = shape
        storage = TensorStorage(count: scalars.count)
        _ = scalars.withUnsafeBufferPointer {
            UnsafeMutableBufferPointer(start: storage.pointer, count: $0.count).initialize(from: $0)
        }
    }

    /// The number of scalars, the product of the shape's dimensions.
    public var elementCount: Int { shape.elementCount }

    /// The elements in row-major order (a copy).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: elementCount)) }

    /// The scalar at row-major position `index`; setting it first makes the storage unique.
    public subscript(index: Int) -> Float {
        get {
            precondition(index >= 0 && index < elementCount, "Tensor index \(index) out of range for \(shape).")
            return storage.pointer[index]
        }
        set {
            precondition(index >= 0 && index < elementCount, "Tensor index \(index) out of range for \(shape).")
            makeUnique()
            storage.pointer[index] = newValue
        }
    }

    /// Calls `body` with the elements in row-major order, without copying; the pointer is valid only inside `body`.
    public func withUnsafeBufferPointer<R, E>(_ body: (UnsafeBufferPointer<Float>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: elementCount))
    }

    /// Calls `body` with writable access to the elements in row-major order, after making the storage unique so the
    /// writes stay private to this value; the pointer is valid only inside `body`.
    public mutating func withUnsafeMutableBufferPointer<R, E>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws(E) -> R
    ) throws(E) -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: elementCount))
    }

    /// Copies the storage if another tensor shares it, so in-place writes stay private to this value.
    package mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: elementCount)
            copy.pointer.initialize(from: storage.pointer, count: elementCount)
            storage = copy
        }
    }

    /// Raw access for the executor and optimizers, which call ``makeUnique()`` before writing.
    package var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// The shape and the first six scalars, e.g. `Tensor[2, 3] [1, 2, 3, 4, 5, 6]`, with `...` when there are more.
    public var description: String {
        let head = scalars.prefix(6).map { String(format: "%.4g", Double($0)) }.joined(separator: ", ")
        return "Tensor\(shape) [\(head)\(elementCount > 6 ? ", ..." : "")]"
    }
}

/// The heap block behind a ``Tensor``. Immutable identity; contents are changed only by a uniquely owning tensor.
package final class TensorStorage: @unchecked Sendable {
    package let pointer: UnsafeMutablePointer<Float>
    package let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }
}
