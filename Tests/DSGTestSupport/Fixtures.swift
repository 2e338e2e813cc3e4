import DSGCore
import Foundation

/// A JSON object from a golden fixture, with typed accessors that fail loudly on a malformed fixture.
public struct Fixture: @unchecked Sendable {
    public let json: [String: Any]

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

    public subscript(key: String) -> Fixture {
        Fixture(json[key] as? [String: Any] ?? [:])
    }

    public func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }

    public var keys: [String] { json.keys.sorted() }

    public func double(_ key: String) -> Double { (json[key] as? NSNumber)?.doubleValue ?? .nan }

    public func floats(_ key: String) -> [Float] {
        (json[key] as? [NSNumber] ?? []).map { $0.floatValue }
    }

    public func ints(_ key: String) -> [Int] { (json[key] as? [NSNumber] ?? []).map { $0.intValue } }

    public func array(_ key: String) -> [Any] { json[key] as? [Any] ?? [] }

    /// A `{"shape": [...], "data": [...]}` entry as a tensor.
    public func tensor(_ key: String) -> Tensor { Fixture.tensor(json[key]) }

    public static func tensor(_ entry: Any?) -> Tensor {
        let e = Fixture(entry as? [String: Any] ?? [:])
        return Tensor(shape: Shape(e.ints("shape")), scalars: e.floats("data"))
    }
}

public enum FixtureError: Error {
    case missing(String)
    case malformed(String)
}
