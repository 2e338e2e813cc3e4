import DSG
import DSGTestSupport
import Testing

@Suite("Diversity metrics refuse too few images")
struct DiversityInputTests {
    /// A spread needs two images: one or none is a typed error, not a division by zero.
    @Test(arguments: [0, 1])
    func fewerThanTwoImagesAreRefused(count: Int) throws {
        let model = try TestModels.batchNormNetwork()
        #expect(throws: DiversityError.tooFewImages(count)) {
            try DiversityMetrics.measure(Tensor(shape: [count, 1, 8, 8]), model: model)
        }
        #expect(DiversityError.tooFewImages(count).description == "diversity needs at least two images, got \(count)")
    }
}
