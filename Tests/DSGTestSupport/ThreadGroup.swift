import DSGCore
import Foundation

/// A ``DataParallelGroup`` of threads in one process, so tests can run a data-parallel computation without
/// MPI: ``run(size:_:)`` calls the body once per member, each on a thread of its own, and every collective
/// waits for all members. Sums add the members' values in rank order, in the buffer's own precision.
public final class ThreadGroup: DataParallelGroup {
    /// This member's place, and the number of members.
    public let rank: Int, size: Int
    private let hub: Hub

    private init(rank: Int, hub: Hub) { (self.rank, self.size, self.hub) = (rank, hub.size, hub) }

    /// Runs `body` on `size` threads at once, one member each; returns their results in rank order, or throws
    /// the first member's error. Once a member has thrown, the others' collectives return at once (with
    /// meaningless values) instead of waiting for it forever.
    public static func run<R>(size: Int, _ body: @escaping @Sendable (ThreadGroup) throws -> R) throws -> [R] {
        let hub = Hub(size: size)
        let results = Results<R>(size: size)
        let done = DispatchGroup()
        for rank in 0..<size {
            done.enter()
            // Threads of their own: a pool could run the members one after another, and they wait for each other.
            let thread = Thread {
                let result = Result { try body(ThreadGroup(rank: rank, hub: hub)) }
                if case .failure = result { hub.fail() }
                results.set(rank, result)
                done.leave()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        done.wait()
        return try results.all()
    }

    /// The members' values added in rank order.
    public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        let all = hub.exchange(rank, values.map { $0 })
        for i in values.indices { values[i] = all.reduce(0) { $0 + $1[i] } }
    }

    /// The members' values added in rank order, in Float.
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        let all = hub.exchange(rank, values.map(Double.init))
        for i in values.indices { values[i] = all.reduce(Float(0)) { $0 + Float($1[i]) } }
    }

    /// The largest of the members' values.
    public func maximum(_ values: UnsafeMutableBufferPointer<Float>) {
        let all = hub.exchange(rank, values.map(Double.init))
        for i in values.indices { values[i] = Float(all.map { $0[i] }.max()!) }
    }

    /// The members' shares one after another.
    public func gather(
        _ share: UnsafeBufferPointer<Float>, into all: UnsafeMutableBufferPointer<Float>, counts: [Int]
    ) {
        precondition(share.count == counts[rank] && all.count == counts.reduce(0, +), "ThreadGroup: wrong counts.")
        let shares = hub.exchange(rank, share.map(Double.init))
        for (i, value) in shares.joined().enumerated() { all[i] = Float(value) }
    }

    /// Where the members meet: each round, every member leaves its values and gets everyone's.
    private final class Hub: @unchecked Sendable {
        let size: Int
        private let condition = NSCondition()
        private var slots: [[Double]], arrived = 0, round = 0, finished: [[Double]] = [], failed = false

        init(size: Int) {
            self.size = size
            slots = Array(repeating: [], count: size)
        }

        /// Every member's `values` of this round, in rank order, once all have arrived. (The result of a round
        /// stays readable until its slowest reader comes back for the next, which cannot finish without it.)
        func exchange(_ rank: Int, _ values: [Double]) -> [[Double]] {
            condition.lock()
            defer { condition.unlock() }
            guard !failed else { return Array(repeating: values, count: size) }
            let mine = round
            slots[rank] = values
            arrived += 1
            if arrived == size {
                (finished, arrived, round) = (slots, 0, round + 1)
                condition.broadcast()
            } else {
                while round == mine && !failed { condition.wait() }
                if round == mine { return Array(repeating: values, count: size) }
            }
            return finished
        }

        /// A member has thrown: no round will complete again.
        func fail() {
            condition.lock()
            defer { condition.unlock() }
            failed = true
            condition.broadcast()
        }
    }

    private final class Results<R>: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Result<R, Error>?]
        init(size: Int) { results = Array(repeating: nil, count: size) }
        func set(_ rank: Int, _ result: Result<R, Error>) { lock.withLock { results[rank] = result } }
        func all() throws -> [R] { try lock.withLock { try results.map { try $0!.get() } } }
    }
}
