import DSG
import Foundation

/// The calibration images of the experiments, by source name (``PTQVariants``) and seed: synthetic ones are
/// generated once and kept in the folder (`samples-<name>-seed<k>.safetensors`, so an interrupted run keeps
/// finished batches); real ones are `count` training images drawn with the seed.
struct CalibrationImages {
    let model: Model
    let train: LabeledImages
    let folder: URL
    let count: Int, iterations: Int

    /// The generation configuration of a named source or ablation variant at this size and `seed`.
    func configuration(_ name: String, seed: UInt64) -> GenerationConfiguration {
        var c = PTQVariants.configuration(name)
        c.count = count
        c.seed = seed
        if c.iterations > 0 { c.iterations = iterations }
        return c
    }

    /// The images of `name` for `seed`, and the seconds their generation took (0 for real images); `status` hears
    /// the generation's progress.
    func images(_ name: String, seed: UInt64, status: (String) -> Void) throws -> (images: Tensor, seconds: Double) {
        if name == "real" { return (train.randomSample(count, seed: seed).images, 0) }
        let file = folder.appendingPathComponent("samples-\(name)-seed\(seed).safetensors")
        var remaining = RemainingTime()
        let set = try DSG.generateSamples(
            from: model, configuration: configuration(name, seed: seed), checkpoint: file
        ) { done, total in
            status(
                "generating \(name), seed \(seed): iteration \(done)/\(total), "
                    + "ETA \(remaining.estimate(done: done, total: total))")
        }
        return (set.images, set.seconds)
    }
}
