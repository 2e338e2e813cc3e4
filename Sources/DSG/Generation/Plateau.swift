/// PyTorch's ReduceLROnPlateau (mode "min", relative threshold 1e-4, factor 0.1, floor 1e-4, no cool-down).
struct Plateau {
    let patience: Int
    private var best = Double.infinity, bad = 0, scale: Float = 1

    init(patience: Int) { self.patience = patience }

    /// The learning rate to use for the step that follows a loss of `loss`.
    mutating func rate(base: Float, loss: Double) -> Float {
        if loss < best * (1 - 1e-4) {
            best = loss
            bad = 0
        } else {
            bad += 1
            if bad > patience {
                scale *= 0.1
                bad = 0
            }
        }
        return max(base * scale, min(base, 1e-4))
    }
}
