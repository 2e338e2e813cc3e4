import DSGCore

/// Evaluation of nodes whose inputs are all constants. Exporters compute shapes and paddings in the graph
/// (PyTorch's `F.pad` writes Cast, Mul, Sub, ConstantOfShape, Concat, Reshape, Slice and Transpose on a constant
/// `[0, 1, 0, 1]`; `x.view(x.size(0), -1)` writes Shape, Gather, Unsqueeze and Concat), and a weight may be
/// transposed before a MatMul: the importer folds all of them into constants as ONNX would compute them.
enum ONNXConstantFolding {
    /// The operators folded when every input is a constant.
    static let operators: Set<String> = [
        "Cast", "Add", "Sub", "Mul", "ConstantOfShape", "Reshape", "Slice", "Transpose", "Concat", "Gather", "Squeeze",
        "Unsqueeze", "Shape",
    ]

    /// The largest constant a broadcast, ConstantOfShape, Gather or Concat may build (2^24 elements), checked
    /// before it is built: far above any shape or padding, and it keeps a malformed file's broadcast from
    /// exhausting memory. The other operators rearrange or pick from a constant the file already holds. It also
    /// bounds every dimension of a constant read.
    static let maximumElements = 1 << 24

    /// Concat's axis defaults to 1 before opset 4 and is required from then on.
    static func checkConcatAxis(_ node: Onnx_NodeProto, opset: Int) throws(ONNXError) {
        guard opset < 4 || node.attribute("axis") != nil else {
            throw .unsupportedAttribute(node: node.label, op: node.opType, attribute: "axis", value: "missing")
        }
    }

    /// The entries of `dims` a Shape node keeps: from `start` to `end`, both clamped to [-rank, rank] and
    /// counted from the end when negative, as ONNX does.
    static func shape(_ dims: [Int], _ node: Onnx_NodeProto) throws -> [Int] {
        func position(_ i: Int) -> Int {
            let clamped = min(max(i, -dims.count), dims.count)
            return clamped < 0 ? clamped + dims.count : clamped
        }
        let start = position(try node.int("start", default: 0))
        let stop = position(try node.int("end", default: dims.count))
        return start < stop ? Array(dims[start..<stop]) : []
    }

    /// The value of `node`'s first output; `inputs` are its inputs (nil where an optional one is absent).
    static func fold(_ node: Onnx_NodeProto, _ inputs: [Onnx_TensorProto?], opset: Int) throws -> Onnx_TensorProto {
        let given = try inputs.map { try $0.map(Constant.init) }
        guard let x = given.first ?? nil else {
            throw ONNXError.unsupportedAttribute(node: node.label, op: node.opType, attribute: "inputs", value: "none")
        }
        let result = try Folding(node: node, opset: opset).run(x, given)
        assert(Shape(result.dims).checkedElementCount == result.values.count, "a fold's values fill its dimensions")
        // A weight laid out anew is still that weight: the layer reading it is named after it.
        return result.proto(named: node.opType == "Transpose" ? inputs[0]?.name ?? node.output[0] : node.output[0])
    }
}

/// A constant's dimensions and values: integers (shapes, axes, pads, with the batch as
/// ``ONNXGraphImporter/batchMarker``) or Float32 (weights, bounds).
struct Constant {
    enum Values {
        case integers([Int])
        case floats([Float])

        var count: Int {
            switch self {
            case .integers(let v): v.count
            case .floats(let v): v.count
            }
        }

        /// The parts one after the other, if they are all integers or all floats.
        static func joined(_ parts: [Values]) -> Values? {
            var integers: [Int] = [], floats: [Float] = [], kinds = Set<Bool>()
            for part in parts {
                switch part {
                case .integers(let v): (integers, kinds) = (integers + v, kinds.union([false]))
                case .floats(let v): (floats, kinds) = (floats + v, kinds.union([true]))
                }
            }
            guard kinds.count == 1 else { return nil }
            return kinds.first! ? .floats(floats) : .integers(integers)
        }

        /// The values at `indices`, in that order.
        func picking(_ indices: [Int]) -> Values {
            switch self {
            case .integers(let v): .integers(indices.map { v[$0] })
            case .floats(let v): .floats(indices.map { v[$0] })
            }
        }
    }

    var dims: [Int]
    var values: Values

    init(dims: [Int], values: Values) { (self.dims, self.values) = (dims, values) }

    init(_ t: Onnx_TensorProto) throws {
        dims = try t.shape().dimensions
        // Also keeps every index and stride computation below from overflowing, whatever a zero elsewhere hides.
        guard dims.allSatisfy({ $0 <= ONNXConstantFolding.maximumElements }) else {
            throw ONNXError.dimensions(tensor: t.name, dimensions: dims)
        }
        values = t.dataType == ONNXDataType.float ? .floats(try t.floats()) : .integers(try t.integers())
    }

    func proto(named name: String) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        (t.name, t.dims) = (name, dims.map(Int64.init))
        switch values {
        case .integers(let v): (t.dataType, t.int64Data) = (ONNXDataType.int64, v.map(Int64.init))
        case .floats(let v): (t.dataType, t.floatData) = (ONNXDataType.float, v)
        }
        return t
    }

    /// Row-major strides of `dims`.
    static func strides(_ dims: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: dims.count)
        for i in stride(from: dims.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * dims[i + 1] }
        return s
    }

    /// The offsets of every element of a `dims`-shaped result, where `source(index)` maps its multi-index to an
    /// offset in this constant.
    static func offsets(_ dims: [Int], _ source: ([Int]) -> Int) -> [Int] {
        let count = dims.reduce(1, *)
        var index = [Int](repeating: 0, count: dims.count), out: [Int] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            out.append(source(index))
            var a = dims.count - 1
            while a >= 0 {
                index[a] += 1
                if index[a] < dims[a] { break }
                index[a] = 0
                a -= 1
            }
        }
        return out
    }
}

/// One folding step: the node, for its attributes and for messages.
private struct Folding {
    let node: Onnx_NodeProto
    let opset: Int

    func refused(_ attribute: String, _ value: String) -> ONNXError {
        .unsupportedAttribute(node: node.label, op: node.opType, attribute: attribute, value: value)
    }

    /// Integers, or a refusal naming the input.
    func integers(_ c: Constant?, _ what: String) throws -> [Int] {
        guard let c, case .integers(let v) = c.values else { throw refused(what, "not an integer constant") }
        return v
    }

    /// Refuses a result of `dims` larger than folding builds, before it is built.
    func checkSize(_ dims: [Int]) throws {
        guard let count = Shape(dims).checkedElementCount, count <= ONNXConstantFolding.maximumElements else {
            throw refused("result", "\(dims) (too large to fold)")
        }
    }

    func axis(_ a: Int, rank: Int) throws -> Int {
        guard let n = ONNXGraphImporter.normalized(a, rank: rank) else {
            throw refused("axis", "\(a) of a rank-\(rank) constant")
        }
        return n
    }

    func run(_ x: Constant, _ inputs: [Constant?]) throws -> Constant {
        switch node.opType {
        case "Identity": return x
        case "Cast": return try cast(x)
        case "Add", "Sub", "Mul": return try arithmetic(x, inputs.count > 1 ? inputs[1] : nil)
        case "ConstantOfShape": return try constantOfShape(x)
        case "Reshape": return try reshape(x, try integers(inputs.count > 1 ? inputs[1] : nil, "shape"))
        case "Slice": return try slice(x, inputs)
        case "Transpose": return try transpose(x)
        case "Concat": return try concat(inputs.compactMap { $0 })
        case "Gather": return try gather(x, inputs.count > 1 ? inputs[1] : nil)
        case "Squeeze", "Unsqueeze": return try squeeze(x, inputs.count > 1 ? inputs[1] : nil)
        case "Shape": return try shape(x)
        default: throw ONNXError.unsupportedOperator(node: node.label, op: node.opType)
        }
    }

    private func cast(_ x: Constant) throws -> Constant {
        let to = try node.int("to", default: 0)
        switch (to, x.values) {
        case (Int(ONNXDataType.int64), .integers), (Int(ONNXDataType.int32), .integers),
            (Int(ONNXDataType.float), .floats):
            return x
        case (Int(ONNXDataType.float), .integers(let v)):
            guard !v.contains(ONNXGraphImporter.batchMarker) else { throw refused("input", "the batch size") }
            return Constant(dims: x.dims, values: .floats(v.map(Float.init)))
        case (Int(ONNXDataType.int64), .floats(let v)), (Int(ONNXDataType.int32), .floats(let v)):
            // ONNX truncates towards zero; values beyond the integers are refused rather than undefined.
            guard v.allSatisfy({ $0.isFinite && abs($0) < 1e15 }) else { throw refused("input", "\(v)") }
            return Constant(dims: x.dims, values: .integers(v.map { Int($0) }))
        default: throw refused("to", "\(to) (only FLOAT, INT32 and INT64)")
        }
    }

    /// Add, Sub or Mul with NumPy broadcasting, of integers (not the batch size) or floats.
    private func arithmetic(_ a: Constant, _ b: Constant?) throws -> Constant {
        guard let b else { throw refused("inputs", "one") }
        let rank = max(a.dims.count, b.dims.count)
        let da = [Int](repeating: 1, count: rank - a.dims.count) + a.dims
        let db = [Int](repeating: 1, count: rank - b.dims.count) + b.dims
        var dims: [Int] = []
        for (p, q) in zip(da, db) {
            guard p == q || p == 1 || q == 1 else { throw refused("broadcasting", "\(a.dims) and \(b.dims)") }
            dims.append(p == 1 ? q : p)
        }
        try checkSize(dims)
        let (sa, sb) = (Constant.strides(da), Constant.strides(db))
        let ia = Constant.offsets(dims) { i in zip(i, zip(da, sa)).reduce(0) { $0 + ($1.1.0 == 1 ? 0 : $1.0 * $1.1.1) }
        }
        let ib = Constant.offsets(dims) { i in zip(i, zip(db, sb)).reduce(0) { $0 + ($1.1.0 == 1 ? 0 : $1.0 * $1.1.1) }
        }
        switch (a.values.picking(ia), b.values.picking(ib)) {
        case (.integers(let p), .integers(let q)):
            let marker = ONNXGraphImporter.batchMarker
            guard !p.contains(marker), !q.contains(marker) else { throw refused("input", "the batch size") }
            let values = try zip(p, q).map { (p, q) -> Int in
                let (r, overflow) =
                    switch node.opType {
                    case "Add": p.addingReportingOverflow(q)
                    case "Sub": p.subtractingReportingOverflow(q)
                    default: p.multipliedReportingOverflow(by: q)
                    }
                guard !overflow else { throw refused("result", "an integer overflow") }
                return r
            }
            return Constant(dims: dims, values: .integers(values))
        case (.floats(let p), .floats(let q)):
            let values = zip(p, q).map { p, q in node.opType == "Add" ? p + q : node.opType == "Sub" ? p - q : p * q }
            return Constant(dims: dims, values: .floats(values))
        default: throw refused("inputs", "an integer and a float constant")
        }
    }

    private func constantOfShape(_ x: Constant) throws -> Constant {
        let dims = try integers(x, "input")
        guard dims.allSatisfy({ $0 >= 0 }) else { throw refused("input", "\(dims)") }
        try checkSize(dims)
        let count = Shape(dims).elementCount
        let fill = try node.attribute("value").map { try Constant($0.t) } ?? Constant(dims: [1], values: .floats([0]))
        guard fill.values.count == 1 else { throw refused("value", "\(fill.dims) (one value)") }
        return Constant(dims: dims, values: fill.values.picking([Int](repeating: 0, count: count)))
    }

    /// Reshape with ONNX's 0 (copy the dimension, unless allowzero) and one -1 (the rest).
    private func reshape(_ x: Constant, _ shape: [Int]) throws -> Constant {
        var dims = shape
        let allowZero = try node.int("allowzero", default: 0) != 0
        for (i, d) in shape.enumerated() where d == 0 && !allowZero {
            guard i < x.dims.count else { throw refused("shape", "\(shape) for \(x.dims)") }
            dims[i] = x.dims[i]
        }
        let known = dims.filter { $0 != -1 }
        guard known.allSatisfy({ $0 >= 0 }), dims.count - known.count <= 1,
            let product = Shape(known).checkedElementCount
        else { throw refused("shape", "\(shape) for \(x.dims)") }
        if let free = dims.firstIndex(of: -1) {
            guard product > 0, x.values.count % product == 0 else { throw refused("shape", "\(shape) for \(x.dims)") }
            dims[free] = x.values.count / product
        } else {
            guard product == x.values.count else { throw refused("shape", "\(shape) for \(x.dims)") }
        }
        return Constant(dims: dims, values: x.values)
    }

    /// Slice along some axes with ONNX's clamping; steps may be negative (PyTorch reverses pads this way).
    private func slice(_ x: Constant, _ inputs: [Constant?]) throws -> Constant {
        let rank = x.dims.count
        let starts: [Int], ends: [Int], axesGiven: [Int]?, steps: [Int]?
        let attributes = ["starts", "ends", "axes"].filter { node.attribute($0) != nil }
        // From opset 10 these are inputs; an attribute left over would otherwise be ignored.
        guard opset < 10 || attributes.isEmpty else { throw refused(attributes[0], "an attribute from opset 10 on") }
        if opset < 10 {
            starts = try node.ints("starts", default: [])
            ends = try node.ints("ends", default: [])
            axesGiven = node.attribute("axes").map { $0.ints.map { Int($0) } }
            steps = nil
        } else {
            func input(_ i: Int) -> Constant? { i < inputs.count ? inputs[i] : nil }
            starts = try integers(input(1), "starts")
            ends = try integers(input(2), "ends")
            axesGiven = try input(3).map { try integers($0, "axes") }
            steps = try input(4).map { try integers($0, "steps") }
        }
        let axes = try (axesGiven ?? Array(0..<starts.count)).map { try axis($0, rank: rank) }
        let stepList = steps ?? [Int](repeating: 1, count: starts.count)
        guard ends.count == starts.count, axes.count == starts.count, stepList.count == starts.count,
            Set(axes).count == axes.count, !stepList.contains(0)
        else { throw refused("starts/ends", "\(starts)/\(ends) on axes \(axes) with steps \(stepList)") }
        // Per axis, the source indices kept, in order.
        var picks = x.dims.map { Array(0..<$0) }
        for (k, a) in axes.enumerated() {
            let n = x.dims[a], step = stepList[k]
            func clamp(_ i: Int, _ low: Int, _ high: Int) -> Int { min(max(i < 0 ? i + n : i, low), high) }
            // The first index, and how many follow `step` apart (counted, so that a huge step cannot overflow).
            let (first, end) =
                step > 0
                ? (clamp(starts[k], 0, n), clamp(ends[k], 0, n))
                : (clamp(starts[k], 0, n - 1), clamp(ends[k], -1, n - 1))
            let span = step > 0 ? end - first : first - end
            picks[a] = span > 0 ? (0...((span - 1) / abs(step))).map { first + $0 * step } : []
        }
        let strides = Constant.strides(x.dims), dims = picks.map(\.count)
        let offsets = Constant.offsets(dims) { i in (0..<rank).reduce(0) { $0 + picks[$1][i[$1]] * strides[$1] } }
        return Constant(dims: dims, values: x.values.picking(offsets))
    }

    private func transpose(_ x: Constant) throws -> Constant {
        let rank = x.dims.count
        let perm = node.attribute("perm").map { $0.ints.map { Int($0) } } ?? Array((0..<rank).reversed())
        guard perm.sorted() == Array(0..<rank) else { throw refused("perm", "\(perm) of a rank-\(rank) constant") }
        let strides = Constant.strides(x.dims), dims = perm.map { x.dims[$0] }
        let offsets = Constant.offsets(dims) { i in (0..<rank).reduce(0) { $0 + i[$1] * strides[perm[$1]] } }
        return Constant(dims: dims, values: x.values.picking(offsets))
    }

    private func concat(_ parts: [Constant]) throws -> Constant {
        guard let first = parts.first, first.dims.count > 0 else { throw refused("inputs", "scalars") }
        try ONNXConstantFolding.checkConcatAxis(node, opset: opset)
        let rank = first.dims.count, a = try axis(try node.int("axis", default: 1), rank: rank)
        guard
            parts.allSatisfy({
                $0.dims.count == rank
                    && zip($0.dims, first.dims).enumerated().allSatisfy {
                        $0.offset == a || $0.element.0 == $0.element.1
                    }
            })
        else { throw refused("inputs", "\(parts.map(\.dims)) along axis \(a)") }
        var dims = first.dims
        dims[a] = parts.reduce(0) { $0 + $1.dims[a] }
        try checkSize(dims)
        guard let all = Constant.Values.joined(parts.map(\.values)) else {
            throw refused("inputs", "integer and float constants together")
        }
        let outer = first.dims[..<a].reduce(1, *), inner = first.dims[(a + 1)...].reduce(1, *)
        // Per outer row, each part's slice in turn; part p's values start at bases[p] in `all`.
        var bases: [Int] = [], base = 0
        for p in parts {
            bases.append(base)
            base += p.values.count
        }
        var offsets: [Int] = []
        for o in 0..<outer {
            for (p, part) in parts.enumerated() {
                let size = part.dims[a] * inner
                offsets += (0..<size).map { bases[p] + o * size + $0 }
            }
        }
        return Constant(dims: dims, values: all.picking(offsets))
    }

    private func gather(_ x: Constant, _ indices: Constant?) throws -> Constant {
        guard let indices else { throw refused("indices", "none") }
        let picks = try integers(indices, "indices")
        let rank = x.dims.count
        guard rank >= 1 else { throw refused("data", "a scalar") }
        let a = try axis(try node.int("axis", default: 0), rank: rank), n = x.dims[a]
        let chosen = try picks.map { i -> Int in
            let j = i < 0 ? i + n : i
            guard (0..<n).contains(j) else { throw refused("indices", "\(picks) on \(n) entries") }
            return j
        }
        let dims = Array(x.dims[..<a]) + indices.dims + Array(x.dims[(a + 1)...])
        try checkSize(dims)
        let outer = x.dims[..<a].reduce(1, *), inner = x.dims[(a + 1)...].reduce(1, *)
        var offsets: [Int] = []
        for o in 0..<outer { for j in chosen { offsets += (0..<inner).map { (o * n + j) * inner + $0 } } }
        return Constant(dims: dims, values: x.values.picking(offsets))
    }

    /// Squeeze or Unsqueeze: the values stay, axes of size 1 go or come.
    private func squeeze(_ x: Constant, _ axesInput: Constant?) throws -> Constant {
        let given =
            try axesInput.map { try integers($0, "axes") } ?? node.attribute("axes").map { $0.ints.map { Int($0) } }
        var dims = x.dims
        if node.opType == "Squeeze" {
            let axes = try (given ?? dims.indices.filter { dims[$0] == 1 }).map { try axis($0, rank: dims.count) }
            guard axes.allSatisfy({ dims[$0] == 1 }) else { throw refused("axes", "\(axes) of \(dims)") }
            dims = dims.indices.filter { !axes.contains($0) }.map { dims[$0] }
        } else {
            guard let given else { throw refused("axes", "none") }
            let rank = dims.count + given.count
            let axes = try given.map { try axis($0, rank: rank) }.sorted()
            guard Set(axes).count == axes.count else { throw refused("axes", "\(given)") }
            for a in axes { dims.insert(1, at: a) }
        }
        return Constant(dims: dims, values: x.values)
    }

    private func shape(_ x: Constant) throws -> Constant {
        let dims = try ONNXConstantFolding.shape(x.dims, node)
        return Constant(dims: [dims.count], values: .integers(dims))
    }
}
