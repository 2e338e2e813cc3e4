import Foundation

/// A scatter plot written as SVG (text, so axis labels and a legend need no font files).
public struct ScatterPlot: Sendable {
    /// One set of points drawn in one colour, with an entry in the legend.
    public struct Series: Sendable {
        /// The legend's label, followed there by the number of points.
        public var name: String
        /// CSS colour, e.g. "#1f77b4".
        public var color: String
        /// The points in data units; non-finite ones are not drawn.
        public var points: [(x: Double, y: Double)]

        /// A series of `points` labelled `name`, drawn in the CSS colour `color`.
        public init(name: String, color: String, points: [(x: Double, y: Double)]) {
            (self.name, self.color, self.points) = (name, color, points)
        }
    }

    /// The heading above the plot.
    public var title: String
    /// The horizontal axis's label.
    public var xLabel: String
    /// The vertical axis's label.
    public var yLabel: String
    /// The series, drawn in order (later ones on top) and listed in the legend in that order.
    public var series: [Series]

    /// A plot of `series` with these labels; the axes' ranges come from the data when the SVG is made.
    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        (self.title, self.xLabel, self.yLabel, self.series) = (title, xLabel, yLabel, series)
    }

    /// The plot as an SVG document of `width` x `height` pixels, axes from the data's range with a margin.
    public func svg(width: Int = 640, height: Int = 480) -> String {
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let (x0, x1) = Self.padded(all.map(\.x)), (y0, y1) = Self.padded(all.map(\.y))
        let (left, right, top, bottom) = (70.0, Double(width) - 190, 40.0, Double(height) - 55)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (right - left) }
        func py(_ y: Double) -> Double { bottom - (y - y0) / (y1 - y0) * (bottom - top) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" \
            font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(width / 2)" y="22" text-anchor="middle" font-size="14">\(Self.escape(title))</text>
            <rect x="\(left)" y="\(top)" width="\(right - left)" height="\(bottom - top)" fill="none" stroke="#444"/>

            """
        for i in 0...4 {
            let fx = x0 + (x1 - x0) * Double(i) / 4, fy = y0 + (y1 - y0) * Double(i) / 4
            svg += "<text x=\"\(px(fx))\" y=\"\(bottom + 16)\" text-anchor=\"middle\">\(Self.tick(fx))</text>\n"
            svg += "<text x=\"\(left - 6)\" y=\"\(py(fy) + 4)\" text-anchor=\"end\">\(Self.tick(fy))</text>\n"
        }
        svg +=
            "<text x=\"\((left + right) / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">"
            + "\(Self.escape(xLabel))</text>\n"
        svg +=
            "<text transform=\"translate(16 \((top + bottom) / 2)) rotate(-90)\" text-anchor=\"middle\">"
            + "\(Self.escape(yLabel))</text>\n"
        for (k, s) in series.enumerated() {
            for p in s.points where p.x.isFinite && p.y.isFinite {
                svg += String(
                    format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\" fill-opacity=\"0.6\"/>\n", px(p.x),
                    py(p.y), s.color)
            }
            let ly = top + 10 + Double(k) * 20
            svg += "<circle cx=\"\(right + 20)\" cy=\"\(ly)\" r=\"5\" fill=\"\(s.color)\"/>"
            svg += "<text x=\"\(right + 32)\" y=\"\(ly + 4)\">\(Self.escape(s.name)) (\(s.points.count))</text>\n"
        }
        return svg + "</svg>\n"
    }

    private static func padded(_ values: [Double]) -> (Double, Double) {
        guard let lo = values.min(), let hi = values.max() else { return (0, 1) }
        let pad = max((hi - lo) * 0.05, 1e-6)
        return (lo - pad, hi + pad)
    }

    private static func tick(_ v: Double) -> String {
        String(format: abs(v) >= 100 || (abs(v) < 0.01 && v != 0) ? "%.2g" : "%.2f", v)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
