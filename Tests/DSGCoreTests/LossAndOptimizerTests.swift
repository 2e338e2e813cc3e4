import DSGCore
import DSGTestSupport
import Testing

@Suite("Losses, optimizers and schedules against PyTorch")
struct LossAndOptimizerTests {
    static let file = try! Fixture(named: "ops.json", in: .module)

    @Test func crossEntropy() throws {
        let c = Self.file["losses"]["cross_entropy"]
        let logits = c.tensor("logits")
        let labels = c.ints("labels").map(Int32.init)
        var grad = [Float](repeating: 0, count: logits.elementCount)
        let loss = try logits.withUnsafeBufferPointer { l in
            try Losses.softmaxCrossEntropy(
                logits: l.baseAddress!, labels: labels, batch: logits.shape[0], classes: logits.shape[1],
                gradient: &grad)
        }
        #expect(abs(Double(loss) - c.double("loss")) < 1e-5)
        expectClose(grad, c.tensor("grad").scalars, rtol: 1e-4, atol: 1e-6)
    }

    @Test(arguments: [("kl_batchmean_T4", Losses.Reduction.batchMean), ("kl_elementmean_T4", .elementMean)])
    func klDivergence(name: String, reduction: Losses.Reduction) {
        let c = Self.file["losses"][name]
        let s = c.tensor("student"), t = c.tensor("teacher")
        var grad = [Float](repeating: 0, count: s.elementCount)
        let loss = s.withUnsafeBufferPointer { sp in
            t.withUnsafeBufferPointer { tp in
                Losses.klDivergence(
                    student: sp.baseAddress!, teacher: tp.baseAddress!, batch: s.shape[0], classes: s.shape[1],
                    temperature: Float(c.double("temperature")), reduction: reduction, gradient: &grad)
            }
        }
        #expect(abs(Double(loss) - c.double("loss")) < 1e-6 + 1e-5 * abs(c.double("loss")))
        expectClose(grad, c.tensor("grad").scalars, rtol: 1e-4, atol: 1e-7)
    }

    @Test func meanSquaredError() {
        let c = Self.file["losses"]["mse"]
        let p = c.tensor("prediction").scalars, t = c.tensor("target").scalars
        var grad = [Float](repeating: 0, count: p.count)
        let loss = Losses.meanSquaredError(prediction: p, target: t, count: p.count, gradient: &grad)
        #expect(abs(Double(loss) - c.double("loss")) < 1e-5)
        expectClose(grad, c.tensor("grad").scalars, rtol: 1e-4, atol: 1e-6)
    }

    /// Each loss's gradient against central differences of the loss itself, in Double.
    @Test func lossGradientsMatchFiniteDifferences() {
        var rng = SeededRandom(seed: 11)
        let (n, k) = (3, 5)
        let a = (0..<(n * k)).map { _ in rng.normal(standardDeviation: 2) }
        let b = (0..<(n * k)).map { _ in rng.normal(standardDeviation: 2) }
        let labels: [Int32] = [4, 0, 2]
        let losses: [(String, ([Float], UnsafeMutablePointer<Float>?) -> Float)] = [
            (
                "cross-entropy",
                { x, g in try! Losses.softmaxCrossEntropy(logits: x, labels: labels, batch: n, classes: k, gradient: g)
                }
            ),
            (
                "KL",
                { x, g in
                    Losses.klDivergence(
                        student: x, teacher: b, batch: n, classes: k, temperature: 3, reduction: .batchMean, gradient: g
                    )
                }
            ),
            ("MSE", { x, g in Losses.meanSquaredError(prediction: x, target: b, count: n * k, gradient: g) }),
        ]
        for (name, f) in losses {
            var grad = [Float](repeating: 0, count: a.count)
            _ = f(a, &grad)
            for i in a.indices {
                var plus = a, minus = a
                plus[i] += 1e-2
                minus[i] -= 1e-2
                let numeric = (Double(f(plus, nil)) - Double(f(minus, nil))) / 2e-2
                #expect(abs(numeric - Double(grad[i])) < 2e-4 + 1e-3 * abs(numeric), "\(name)[\(i)]")
            }
        }
    }

    @Test func crossEntropyRejectsLabelsOutsideTheClasses() {
        let logits = [Float](repeating: 0, count: 6)
        #expect(throws: LossError.labelOutOfRange(sample: 1, label: 3, classes: 3)) {
            try Losses.softmaxCrossEntropy(logits: logits, labels: [0, 3], batch: 2, classes: 3)
        }
        #expect(throws: LossError.labelOutOfRange(sample: 0, label: -1, classes: 3)) {
            try Losses.softmaxCrossEntropy(logits: logits, labels: [-1, 0], batch: 2, classes: 3)
        }
    }

    @Test(arguments: ["sgd_plain", "sgd_momentum_wd", "sgd_nesterov_wd", "adam", "adam_betas_wd"])
    func optimizerTrajectory(name: String) {
        let c = Self.file["optimizers"][name], config = c["config"]
        var p = c.floats("p0")
        let cs = c.floats("c"), ds = c.floats("d")
        let lr = Float(config.double("lr"))
        let wd = config.has("weight_decay") ? Float(config.double("weight_decay")) : 0
        let step: (inout [Float], [Float]) -> Void
        if name.hasPrefix("sgd") {
            let sgd = SGD(
                learningRate: lr, momentum: config.has("momentum") ? Float(config.double("momentum")) : 0,
                nesterov: (config.json["nesterov"] as? Bool) ?? false, weightDecay: wd)
            step = { p, g in sgd.step(&p, gradient: g, count: g.count, slot: 0) }
        } else {
            let betas = config.floats("betas")
            let adam = Adam(learningRate: lr, beta1: betas.first ?? 0.9, beta2: betas.last ?? 0.999, weightDecay: wd)
            step = { p, g in adam.step(&p, gradient: g, count: g.count, slot: 0) }
        }
        for expected in c.array("trajectory") {
            let g = p.indices.map { 2 * cs[$0] * p[$0] + ds[$0] }
            step(&p, g)
            expectClose(p, (expected as? [Double] ?? []).map(Float.init), rtol: 1e-5, atol: 1e-6, name)
        }
    }

    @Test func schedules() {
        let c = Self.file["optimizers"]["schedules"]
        let base = Float(c.double("base"))
        let rates = c["rates"]
        let cosine = LearningRateSchedule.cosine(total: 10, minimum: 0.01)
        let multi = LearningRateSchedule.multiStep(milestones: [3, 7], factor: 0.1)
        // Past `total` PyTorch's cosine schedule climbs again; ours holds the minimum, so compare up to `total`.
        expectClose(
            (0...10).map { cosine.rate(base: base, at: $0) }, Array(rates.floats("cosine_T10_min0.01").prefix(11)),
            rtol: 1e-5, atol: 1e-7, "cosine")
        expectClose(
            (0..<12).map { multi.rate(base: base, at: $0) }, rates.floats("multistep_3_7_gamma0.1"), rtol: 1e-5,
            atol: 1e-8, "multi-step")
    }
}
