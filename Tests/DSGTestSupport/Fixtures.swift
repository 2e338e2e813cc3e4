import DSGCore
import Foundation

/// A JSON object from a golden fixture, with typed accessors that fail loudly on a malformed fixture.
public struct Fixture: @unchecked Sendable {
    /// The decoded object.
    public let json: [String: Any]

    /// Wraps an already decoded object.
    public init(_ json: [String: Any]) { self.json = json }

    /// Loads `name` from `bundle` (a test target's `Bundle.module`, resources copied from `Fixtures/`).
    public init(named name: String, in bundle: Bundle) throws {
        guard let url = bundle.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw FixtureError.missing(name)
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw FixtureError.malformed(name)
        }
        json = object
    }

    /// The nested object under `key` (empty if it is missing or not an object).
    public subscript(key: String) -> Fixture {
        Fixture(json[key] as? [String: Any] ?? [:])
    }

    /// Whether `key` is present and not null.
    public func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }

    /// The keys, sorted.
    public var keys: [String] { json.keys.sorted() }

    /// The number under `key`, NaN when missing (so a comparison with it fails).
    public func double(_ key: String) -> Double { (json[key] as? NSNumber)?.doubleValue ?? .nan }

    /// The numbers under `key` as Float32 (empty when missing).
    public func floats(_ key: String) -> [Float] {
        (json[key] as? [NSNumber] ?? []).map { $0.floatValue }
    }

    /// The numbers under `key` as integers (empty when missing).
    public func ints(_ key: String) -> [Int] { (json[key] as? [NSNumber] ?? []).map { $0.intValue } }

    /// The array under `key` (empty when missing).
    public func array(_ key: String) -> [Any] { json[key] as? [Any] ?? [] }

    /// A `{"shape": [...], "data": [...]}` entry as a tensor.
    public func tensor(_ key: String) -> Tensor { Fixture.tensor(json[key]) }

    /// A `{"shape": [...], "data": [...]}` object as a tensor.
    public static func tensor(_ entry: Any?) -> Tensor {
        let e = Fixture(entry as? [String: Any] ?? [:])
        return Tensor(shape: Shape(e.ints("shape")), scalars: e.floats("data"))
    }
}

/// Why a fixture could not be read.
public enum FixtureError: Error {
    /// No file of that name among the target's fixtures.
    case missing(String)
    /// The file is not a JSON object.
    case malformed(String)
}
