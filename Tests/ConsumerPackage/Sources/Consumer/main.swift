import DSG

// Build a ResNet-20 with `import DSG` alone, run a training step and print what came out.
let model = try ResNet.resnet20(input: [1, 28, 28], classes: 10, seed: 1)
let executor = try GraphExecutor(model: model, batchSize: 4)
var generator = SeededGenerator(seed: 2)
let images = generator.normalTensor([4, 1, 28, 28])
try executor.forward([images], training: true)
executor.zeroGradients()
let labels: [Int32] = [0, 1, 2, 3]
let loss = try executor.withValue(model.outputs[0]) { logits in
    try Losses.softmaxCrossEntropy(
        logits: logits.baseAddress!, labels: labels, batch: 4, classes: 10,
        gradient: executor.gradient(of: model.outputs[0]).baseAddress!)
}
executor.backward()
SGD(learningRate: 0.1, momentum: 0.9).step(executor)
print("swift-dsg \(DSG.version): ResNet-20 with \(model.parameterCount) parameters, \(model.batchNormLayers.count) BatchNorm layers; loss \(loss)")
guard loss.isFinite, model.batchNormLayers.count == 21 else { fatalError("unexpected result") }
