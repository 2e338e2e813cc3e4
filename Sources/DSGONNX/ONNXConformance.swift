import DSGCore
import Foundation

/// Runs ONNX's own backend test cases (a folder with `model.onnx` and `test_data_set_0/input_k.pb`,
/// `output_0.pb`, as Debian's `libonnx-testdata` installs them) through the importer and the executor.
///
/// A case's first graph input is the model's input; the test's data for every further input becomes an
/// initializer, the way an exported network holds its weights. Each case ends in one of three ways: it
/// passes (the output matches within the suite's tolerance), it is refused (a typed error names what is not
/// supported), or it fails (it ran and computed something else, or threw an error that is not a refusal).
public enum ONNXConformance {
    /// How one case ended.
    public enum Outcome: Equatable, Sendable {
        /// The output matched.
        case passed
        /// The importer or a graph check refused the case; the reason names the operator, attribute or input.
        case refused(String)
        /// The case ran and gave another output, or broke in a way that is not a refusal.
        case failed(String)
    }

    /// One case of a suite and how it ended.
    public struct Result: Sendable {
        /// The suite's folder name (`node`, `pytorch-converted`, ...) and the case's (`test_relu`).
        public let suite: String, name: String
        /// The case's operator types, in node order without repeats.
        public let operators: [String]
        /// How it ended.
        public let outcome: Outcome
    }

    /// The suites of ONNX's backend test data, as `libonnx-testdata` lays them out.
    public static let suites = ["node", "pytorch-converted", "pytorch-operator", "simple"]

    /// Every case under `root`'s ``suites`` whose operators are all supported (``ONNXImport/supportedOperators``),
    /// run in suite and name order; cases of other operators are not run. A single-node case of an operator the
    /// importer folds on constants (shapes, paddings) is run twice: as a graph, and folded (``fold(caseAt:)``),
    /// its operator then reported as `"<op> (folded)"`.
    public static func runSuites(at root: URL) -> [Result] {
        var results: [Result] = []
        for suite in suites {
            let folder = root.appendingPathComponent(suite)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? []
            for name in names {
                let url = folder.appendingPathComponent(name)
                guard let operators = operators(ofCaseAt: url), !operators.isEmpty,
                    operators.allSatisfy(ONNXImport.supportedOperators.contains)
                else { continue }
                results.append(Result(suite: suite, name: name, operators: operators, outcome: run(caseAt: url)))
                // A single-node case of an operator the importer folds is also run as a fold of constants.
                if operators.count == 1, ONNXConstantFolding.operators.contains(operators[0]) {
                    let folded = Result(
                        suite: suite, name: name + " (folded)", operators: [operators[0] + " (folded)"],
                        outcome: fold(caseAt: url))
                    results.append(folded)
                }
            }
        }
        return results
    }

    /// ONNX's backend-test tolerances (`rtol` 1e-3, `atol` 1e-7).
    public static let relativeTolerance: Float = 1e-3, absoluteTolerance: Float = 1e-7

    /// The operator types of the case's graph, in node order without repeats; nil if its model cannot be read.
    public static func operators(ofCaseAt folder: URL) -> [String]? {
        guard let proto = try? readModel(folder) else { return nil }
        var seen: [String] = []
        for node in proto.graph.node where !seen.contains(node.opType) { seen.append(node.opType) }
        return seen
    }

    /// Runs the case in `folder`.
    public static func run(caseAt folder: URL) -> Outcome {
        do {
            var proto = try readModel(folder)
            let data = folder.appendingPathComponent("test_data_set_0")
            let initialized = Set(proto.graph.initializer.map(\.name))
            let inputs = proto.graph.input.filter { !initialized.contains($0.name) }
            let given = try (0..<inputs.count).map { try readTensor(data.appendingPathComponent("input_\($0).pb")) }
            guard let first = given.first else { return .refused("the case has no input") }
            // Every input after the first is bound to the test's data, as an exported model's weights are.
            for (input, var tensor) in zip(inputs.dropFirst(), given.dropFirst()) {
                tensor.name = input.name
                proto.graph.initializer.append(tensor)
            }
            proto.graph.input = Array(inputs.prefix(1))
            let model: Model
            do {
                model = try ONNXImport.model(from: proto, file: folder.lastPathComponent, requireBatchNorm: false)
            } catch let error as GraphError {
                // A graph check refusing an operator's form (a shape, a window) is a refusal; a name or a tensor
                // shape that does not fit is the importer's own mistake.
                switch error {
                case .tensorShape, .duplicateName, .unknownTensor, .unknownValue: return .failed(error.description)
                default: return .refused(error.description)
                }
            } catch {
                return .refused(String(describing: error))
            }
            let expected = try readTensor(data.appendingPathComponent("output_0.pb"))
            let x: Tensor, y: [Float]
            do { (x, y) = (try first.tensor(), try expected.floats()) } catch {
                return .refused(String(describing: error))
            }
            let batch = x.shape.rank > 0 ? x.shape[0] : 0
            guard batch > 0 else { return .refused("an empty batch") }
            let executor = try GraphExecutor(model: model, batchSize: batch, backward: false)
            do { try executor.forward([x], training: false) } catch {
                // The executor refuses non-finite values; only a case that expects them may stop there.
                if y.contains(where: { !$0.isFinite }) { return .refused("non-finite values: \(error)") }
                return .failed(String(describing: error))
            }
            let output = executor.output()
            guard output.shape == (try expected.shape()) else {
                return .failed("output shape \(output.shape), expected \(try expected.shape())")
            }
            for (i, (a, e)) in zip(output.scalars, y).enumerated()
            where !(abs(a - e) <= absoluteTolerance + relativeTolerance * abs(e)) {
                return .failed("element \(i): \(a), expected \(e)")
            }
            return .passed
        } catch {
            return .failed(String(describing: error))
        }
    }

    /// Runs the single-node case in `folder` with every input a constant, through the importer's constant
    /// folding; integer results must be exact, float results within the suite's tolerance.
    public static func fold(caseAt folder: URL) -> Outcome {
        do {
            let proto = try readModel(folder)
            guard proto.graph.node.count == 1, let node = proto.graph.node.first else {
                return .refused("not a single-node case")
            }
            let data = folder.appendingPathComponent("test_data_set_0")
            let initializers = Dictionary(proto.graph.initializer.map { ($0.name, $0) }) { a, _ in a }
            let inputNames = proto.graph.input.map(\.name).filter { initializers[$0] == nil }
            let inputs = try node.input.map { name -> Onnx_TensorProto? in
                if name.isEmpty { return nil }
                if let t = initializers[name] { return t }
                guard let k = inputNames.firstIndex(of: name) else {
                    throw ONNXError.unknownValue(node: node.label, op: node.opType, value: name)
                }
                return try readTensor(data.appendingPathComponent("input_\(k).pb"))
            }
            guard let opset = proto.opsetImport.last(where: { $0.domain.isEmpty || $0.domain == "ai.onnx" }) else {
                return .refused("no default operator set")
            }
            let result: Constant, expected: Constant
            do {
                result = try Constant(try ONNXConstantFolding.fold(node, inputs, opset: Int(opset.version)))
                expected = try Constant(try readTensor(data.appendingPathComponent("output_0.pb")))
            } catch let error as ONNXError {
                return .refused(error.description)
            }
            guard result.dims == expected.dims else {
                return .failed("dimensions \(result.dims), expected \(expected.dims)")
            }
            switch (result.values, expected.values) {
            case (.integers(let a), .integers(let e)):
                if let i = a.indices.first(where: { a[$0] != e[$0] }) {
                    return .failed("element \(i): \(a[i]), expected \(e[i])")
                }
            case (.floats(let a), .floats(let e)):
                for (i, (a, e)) in zip(a, e).enumerated()
                where !(abs(a - e) <= absoluteTolerance + relativeTolerance * abs(e)) {
                    return .failed("element \(i): \(a), expected \(e)")
                }
            default: return .failed("integers where floats are expected, or the other way round")
            }
            return .passed
        } catch {
            return .failed(String(describing: error))
        }
    }

    private static func readModel(_ folder: URL) throws -> Onnx_ModelProto {
        let url = folder.appendingPathComponent("model.onnx")
        do { return try Onnx_ModelProto(serializedBytes: try Data(contentsOf: url)) } catch {
            throw ONNXError.notONNX(file: url.path, reason: String(describing: error))
        }
    }

    private static func readTensor(_ url: URL) throws -> Onnx_TensorProto {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ONNXError.unreadable(file: url.path, reason: "the case's test data is missing")
        }
        do { return try Onnx_TensorProto(serializedBytes: data) } catch {
            throw ONNXError.notONNX(file: url.path, reason: String(describing: error))
        }
    }
}
