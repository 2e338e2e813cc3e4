import Foundation

/// How a decoded image becomes a model input: a centred crop of the input's aspect (square for square inputs),
/// `cropFraction` of the largest such box, resized (bicubic, antialiased) to the model's height and width, converted to its channel count, scaled to
/// [0, 1] and normalised per channel as `(pixel - mean) / standardDeviation`.
///
/// ImageNet models are usually evaluated with `cropFraction` 0.875 (224 of 256; torchvision resizes to 256 and then
/// crops 224, which differs from this crop-then-resize only by resampling rounding) and torchvision's mean
/// (0.485, 0.456, 0.406) and standard deviation (0.229, 0.224, 0.225); EfficientNet-Lite uses 127/255 and 128/255.
public struct ImagePreprocessing: Sendable, Equatable, Codable {
    /// The centred crop's size as a fraction of the largest box of the input's aspect (0 < fraction <= 1); for a
    /// square input, of the image's shorter side. Images are never enlarged: a crop smaller than the input throws.
    public var cropFraction: Double
    /// Per-channel mean and standard deviation on [0, 1] pixels: one value for every channel, or one per channel.
    public var mean: [Float], standardDeviation: [Float]

    /// No crop, no normalisation (pixels in [0, 1]) unless given.
    public init(cropFraction: Double = 1, mean: [Float] = [0], standardDeviation: [Float] = [1]) {
        (self.cropFraction, self.mean, self.standardDeviation) = (cropFraction, mean, standardDeviation)
    }

    /// Fashion-MNIST's normalisation (the embedded model's and `dsg train`'s), no crop.
    public static let fashionMNIST = ImagePreprocessing(
        mean: [FashionMNIST.mean], standardDeviation: [FashionMNIST.standardDeviation])

    /// Checks the values, and their count against a model input of `channels` channels when given.
    public func validate(channels: Int?) throws(ImageError) {
        guard cropFraction > 0 && cropFraction <= 1 else {
            throw .invalidPreprocessing("the crop fraction must be in (0, 1], not \(cropFraction)")
        }
        for (name, values) in [("mean", mean), ("standard deviation", standardDeviation)] {
            guard values.count == 1 || channels.map({ values.count == $0 }) ?? true else {
                throw .invalidPreprocessing(
                    "give one \(name) or one per channel (\(channels ?? 0)), not \(values.count) values")
            }
            guard values.allSatisfy(\.isFinite) else { throw .invalidPreprocessing("the \(name) must be finite") }
        }
        guard standardDeviation.allSatisfy({ $0 > 0 }) else {
            throw .invalidPreprocessing("standard deviations must be positive")
        }
    }

    /// The model input `[channels, height, width]` made from `image` (planar, normalised). `name` is what errors
    /// call the image's file.
    public func input(from image: DecodedImage, shape: Shape, name: String) throws(ImageError) -> [Float] {
        guard shape.rank == 3, shape[0] == 1 || shape[0] == 3, shape[1] > 0, shape[2] > 0 else {
            throw .unsupportedInput(shape: shape.dimensions)
        }
        try validate(channels: shape[0])
        let (channels, height, width) = (shape[0], shape[1], shape[2])
        // The largest centred box of the input's aspect, shrunk by the crop fraction.
        let wider = image.width * height > image.height * width
        let cropHeight = Int(cropFraction * Double(wider ? image.height : image.width * height / width))
        let cropWidth = wider ? cropHeight * width / height : Int(cropFraction * Double(image.width))
        guard cropWidth >= width && cropHeight >= height else {
            throw .tooSmall(
                file: name, width: image.width, height: image.height, crop: cropHeight, inputWidth: width,
                inputHeight: height)
        }
        let region = image.cropped(
            x: (image.width - cropWidth + 1) / 2, y: (image.height - cropHeight + 1) / 2, width: cropWidth,
            height: cropHeight)
        let resized = region.resized(width: width, height: height).converted(toChannels: channels)
        var out = [Float](repeating: 0, count: channels * height * width)
        for c in 0..<channels {
            let scale = 1 / (255 * (standardDeviation.count == 1 ? standardDeviation[0] : standardDeviation[c]))
            let shift = -(mean.count == 1 ? mean[0] : mean[c]) * 255 * scale
            for i in 0..<(height * width) {
                out[c * height * width + i] = Float(resized.pixels[i * channels + c]) * scale + shift
            }
        }
        return out
    }
}

/// A folder of labelled PNG and JPEG images, in either of the two layouts image sets come in: one sub-folder per
/// class, named by its class index (`3/shirt.png`), or the label at the end of each file name, after the last
/// underscore (`imagenet_00_243.jpg`, as foolbox names its photos). Files are taken in name order, so a folder
/// loads the same way everywhere; files that are not `.png`, `.jpg` or `.jpeg` are skipped.
public struct ImageFolder: Sendable {
    /// One image file and its class index.
    public struct Entry: Sendable, Equatable {
        /// The image file.
        public let file: URL
        /// Its class index (not yet checked against a model's class count).
        public let label: Int
    }

    /// The folder listed.
    public let folder: URL
    /// Its images with their labels: by class, then by name (class folders), or by name.
    public let entries: [Entry]

    /// Lists the images of `folder` and their labels. Throws when the folder cannot be read, holds no images, or
    /// an image has no label.
    public init(_ folder: URL) throws(ImageError) {
        self.folder = folder
        let items = try Self.contents(of: folder)
        let classFolders = items.filter { $0.isDirectory && (Int($0.name) ?? -1) >= 0 }
        var entries: [Entry] = []
        if !classFolders.isEmpty {
            for classFolder in classFolders.sorted(by: { Int($0.name)! < Int($1.name)! }) {
                let label = Int(classFolder.name)!
                for item in try Self.contents(of: classFolder.url) where Self.isImage(item) {
                    entries.append(Entry(file: item.url, label: label))
                }
            }
        } else {
            for item in items where Self.isImage(item) {
                let stem = item.url.deletingPathExtension().lastPathComponent
                guard let last = stem.split(separator: "_").last, stem.contains("_"), let label = Int(last),
                    label >= 0
                else { throw .noLabel(file: item.url.path) }
                entries.append(Entry(file: item.url, label: label))
            }
        }
        guard !entries.isEmpty else { throw .noImages(folder: folder.path) }
        self.entries = entries
    }

    /// The first `count` images (all of them if there are fewer), to measure on part of a large folder without
    /// decoding the rest.
    public func prefix(_ count: Int) -> ImageFolder {
        ImageFolder(folder: folder, entries: Array(entries.prefix(count)))
    }

    private init(folder: URL, entries: [Entry]) { (self.folder, self.entries) = (folder, entries) }

    /// Decodes every image into a model input of `shape` (`[channels, height, width]`, 1 or 3 channels), with
    /// labels checked against `classes`. `progress` gets the number of images done. Holds all of them in memory
    /// (4 bytes per input value: 600 KB per 224x224 RGB image).
    public func load(
        shape: Shape, classes: Int, preprocessing: ImagePreprocessing, progress: ((Int) -> Void)? = nil
    ) throws(ImageError) -> LabeledImages {
        guard shape.rank == 3, shape[0] == 1 || shape[0] == 3, shape[1] > 0, shape[2] > 0 else {
            throw .unsupportedInput(shape: shape.dimensions)
        }
        try preprocessing.validate(channels: shape[0])  // before any file is read
        if let bad = entries.first(where: { $0.label >= classes }) {
            throw .labelOutOfRange(file: bad.file.path, label: bad.label, classes: classes)
        }
        var scalars = [Float]()
        for (i, entry) in entries.enumerated() {
            let image = try DecodedImage(contentsOf: entry.file)
            scalars += try preprocessing.input(from: image, shape: shape, name: entry.file.path)
            progress?(i + 1)
        }
        return LabeledImages(
            images: Tensor(shape: shape.batched(entries.count), scalars: scalars),
            labels: entries.map { Int32($0.label) }, classes: classes)
    }

    private struct Item {
        let url: URL, name: String, isDirectory: Bool
    }

    private static func contents(of folder: URL) throws(ImageError) -> [Item] {
        let urls: [URL]
        do {
            urls = try FileManager.default.contentsOfDirectory(
                at: folder, includingPropertiesForKeys: [.isDirectoryKey], options: [.skipsHiddenFiles])
        } catch { throw .unreadable(file: folder.path, reason: error.localizedDescription) }
        return urls.map { url in
            let isDirectory = (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) ?? false
            return Item(url: url, name: url.lastPathComponent, isDirectory: isDirectory == true)
        }.sorted { $0.name < $1.name }
    }

    private static func isImage(_ item: Item) -> Bool {
        !item.isDirectory && ["png", "jpg", "jpeg"].contains(item.url.pathExtension.lowercased())
    }
}
