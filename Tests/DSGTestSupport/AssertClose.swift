import Testing

/// The worst element of a comparison, for failure messages.
public struct Mismatch: CustomStringConvertible {
    /// The element's index (-1: the arrays differ in length, and `actual`/`expected` are the lengths).
    public let index: Int
    /// The value found.
    public let actual: Double
    /// The value expected.
    public let expected: Double
    /// "element i: got a, expected e".
    public var description: String { "element \(index): got \(actual), expected \(expected)" }
}

/// Finds the first element where `|a - e| > atol + rtol * |e|`, or nil when all agree.
public func firstMismatch<A: BinaryFloatingPoint, E: BinaryFloatingPoint>(
    _ actual: [A], _ expected: [E], rtol: Double, atol: Double
) -> Mismatch? {
    guard actual.count == expected.count else {
        return Mismatch(index: -1, actual: Double(actual.count), expected: Double(expected.count))
    }
    for i in actual.indices {
        let a = Double(actual[i]), e = Double(expected[i])
        if !(abs(a - e) <= atol + rtol * abs(e)) { return Mismatch(index: i, actual: a, expected: e) }
    }
    return nil
}

/// Expects `actual` and `expected` to agree element-wise within `atol + rtol * |expected|`, reporting the first
/// element that does not (a count mismatch is reported as element -1).
public func expectClose<A: BinaryFloatingPoint, E: BinaryFloatingPoint>(
    _ actual: [A], _ expected: [E], rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let m = firstMismatch(actual, expected, rtol: rtol, atol: atol)
    #expect(m == nil, "\(what) differs: \(m.map(\.description) ?? "")", sourceLocation: sourceLocation)
}

/// The largest `|a - e| / max(|e|, floor)` over all elements; infinity when the arrays differ in length or are
/// empty (a missing fixture key reads as an empty array, which must not pass as a match).
public func maxRelativeError(_ actual: [Float], _ expected: [Float], floor: Double = 1e-3) -> Double {
    guard actual.count == expected.count, !actual.isEmpty else { return .infinity }
    return zip(actual, expected).map { abs(Double($0) - Double($1)) / max(abs(Double($1)), floor) }.max() ?? 0
}
