import DSG
import Foundation

// What a user's package does with `import DSG` alone: load the embedded model, synthesise calibration samples
// from its BatchNorm statistics and quantize it to W4A4; build a ResNet-20 of its own and take a training step.
let embedded = try DSG.defaultModel()
// The same network exported from PyTorch to ONNX (BatchNorm kept) loads through the same call as any model file.
let onnxFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../DSGTests/Fixtures/onnx/resnet20-fashion-mnist.onnx")
let imported = try Model.load(contentsOf: onnxFile)
guard imported.batchNormLayers.count == 21, imported.parameterCount == embedded.parameterCount else {
    fatalError("the ONNX import differs from the embedded model")
}
var configuration = GenerationConfiguration(preset: .dsg)
configuration.count = 8
configuration.batchSize = 8
configuration.iterations = 3  // a smoke test; the default is 500
let samples = try DSG.generateSamples(from: embedded, configuration: configuration)
let quantized = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 4, activationBits: 4))
    .quantize(embedded, calibration: samples.images)

// A few iterations of data-free quantization-aware training: a Generator feeds a W4A4 student.
var qat = QATConfiguration(weightBits: 4, activationBits: 4, generatorLoss: .dsg)
(qat.epochs, qat.iterationsPerEpoch, qat.batchSize, qat.warmupEpochs) = (2, 2, 8, 1)
let trainer = try QATTrainer(teacher: embedded, configuration: qat)
let qatHistory = try trainer.train()
let student = try trainer.quantizedStudent()

let model = try ResNet.resnet20(input: [1, 28, 28], classes: 10, seed: 1)
let executor = try GraphExecutor(model: model, batchSize: 4)
var random = SeededRandom(seed: 2)
let images = random.normalTensor([4, 1, 28, 28])
try executor.forward([images], training: true)
executor.zeroGradients()
let labels: [Int32] = [0, 1, 2, 3]
let loss = try Losses.softmaxCrossEntropy(executor, labels: labels)
executor.backward()
SGD(learningRate: 0.1, momentum: 0.9).step(executor)
// The kernel types of the public API can be named with `import DSG` alone.
let activations: [Activation] = model.nodes.compactMap { ($0.op as? ActivationOp)?.activation }
let geometries: [ConvGeometry] = model.nodes.compactMap { ($0.op as? Conv2dOp)?.geometry }
guard activations.count == 19, geometries.count == 21 else { fatalError("unexpected ResNet-20 layers") }
print(
    "swift-dsg \(DSG.version): ResNet-20 with \(model.parameterCount) parameters and "
        + "\(model.batchNormLayers.count) BatchNorm layers; training loss \(loss); \(samples.count) DSG samples; "
        + "\(quantized.configuration.label) model with \(quantized.activations.count) quantized activations; "
        + "QAT student loss \(qatHistory.map(\.studentLoss)) (\(student.configuration.label))"
)
guard loss.isFinite, samples.count == 8, model.batchNormLayers.count == 21, qatHistory.count == 2,
    qatHistory.allSatisfy({ $0.studentLoss.isFinite })
else { fatalError("unexpected result") }
