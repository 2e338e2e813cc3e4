import DSGMPI
import Foundation

// Run by DSGMPITests under `mpirun -np 2`: every collective of `Communicator` once, with values that depend on
// the rank, and one call MPI refuses. Each rank prints one JSON object; the test checks them.
let world = try Communicator.world()
var result: [String: String] = ["rank": "\(world.rank)", "size": "\(world.size)"]

// Rank 1's bytes (longer than rank 0's) reach every rank.
let sent = Array("from rank \(world.rank)\(String(repeating: "!", count: world.rank))".utf8)
result["broadcast"] = String(decoding: try world.broadcast(sent, from: world.size - 1), as: UTF8.self)
result["broadcastInt"] = "\(try world.broadcast(10 + world.rank, from: world.size - 1))"

var floats: [Float] = [Float(world.rank + 1), 0.5, -Float(world.rank)]
try floats.withUnsafeMutableBufferPointer { try world.allReduceSum($0) }
result["floatSum"] = floats.map { "\($0)" }.joined(separator: " ")
var doubles: [Double] = [Double(world.rank) + 0.25, 1e-300]
try doubles.withUnsafeMutableBufferPointer { try world.allReduceSum($0) }
result["doubleSum"] = doubles.map { "\($0)" }.joined(separator: " ")
result["max"] = "\(try world.allReduceMax(10 * world.rank - 3))"
var maxima: [Float] = [Float(world.rank), -Float(world.rank) - 0.5]
try maxima.withUnsafeMutableBufferPointer { try world.allReduceMax($0) }
result["floatMax"] = maxima.map { "\($0)" }.joined(separator: " ")

// Rank r shares r + 1 values of r + 0.5; every rank gets them all in rank order.
let counts = (0..<world.size).map { $0 + 1 }
let share = [Float](repeating: Float(world.rank) + 0.5, count: world.rank + 1)
var all = [Float](repeating: 0, count: counts.reduce(0, +))
try share.withUnsafeBufferPointer { s in
    try all.withUnsafeMutableBufferPointer { try world.allGather(s, into: $0, counts: counts) }
}
result["allGather"] = all.map { "\($0)" }.joined(separator: " ")

// Rank r sends r + 1 bytes of value r; rank 0 gets them all in rank order, the others nothing.
let gathered = try world.gather(Array(repeating: UInt8(world.rank), count: world.rank + 1))
result["gather"] = gathered.map { $0.map { "\($0)" }.joined(separator: ",") }.joined(separator: "|")
try world.barrier()

// A root that does not exist: MPI refuses it and the wrapper throws, naming the call.
do { _ = try world.broadcast([1], from: world.size) } catch { result["badRoot"] = "\(error)" }

let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
Communicator.finalize()
