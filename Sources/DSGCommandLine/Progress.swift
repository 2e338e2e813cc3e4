import Foundation

/// A progress line on standard error, rewritten in place when standard error is a terminal and printed at most
/// every few seconds otherwise (so logs stay readable).
final class ProgressLine {
    private let interactive = isatty(STDERR_FILENO) == 1
    private var lastPrint = Date.distantPast
    private var width = 0

    func update(_ text: String, force: Bool = false) {
        let now = Date()
        guard force || now.timeIntervalSince(lastPrint) >= (interactive ? 0.2 : 10) else { return }
        lastPrint = now
        if interactive {
            let padded = text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0)
            width = text.count
            FileHandle.standardError.write(Data(("\r" + padded).utf8))
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    /// Ends the line so the next output starts on a fresh one.
    func finish() {
        if interactive && width > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
        width = 0
        lastPrint = .distantPast
    }
}

/// "1h02m", "3m05s", "12s".
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, s % 3600 / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// The time left of a run, from the pace since the first step this process saw: a resumed run starts past its
/// finished work, which must not count as done in no time.
struct RemainingTime {
    private var first: (done: Int, date: Date)?

    /// "3m05s" for `done` of `total` steps ("?" until there is a pace).
    mutating func estimate(done: Int, total: Int) -> String {
        let start = first ?? (done, Date())
        first = start
        let rate = Double(done - start.done) / Date().timeIntervalSince(start.date)
        return formatDuration(Double(total - done) / rate)
    }
}
