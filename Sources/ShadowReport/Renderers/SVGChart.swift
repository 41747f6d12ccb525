import ShadowCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small inline SVG charts: no script, no fonts to fetch, readable in any browser or mail client.
enum SVGChart {
    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
    }

    static let width = 640.0
    static let height = 260.0
    static let left = 64.0
    static let right = 16.0
    static let top = 24.0
    static let bottom = 40.0

    /// Lines over a shared x axis (log-scaled when `logX`), with a legend.
    static func lines(
        _ series: [Series],
        title: String,
        logX: Bool,
        xFormat: (Double) -> String,
        yFormat: (Double) -> String,
        yRange: ClosedRange<Double>? = nil
    ) -> String {
        let all = series.flatMap(\.points)
        guard !all.isEmpty else { return self.empty(title) }
        let transform: (Double) -> Double = logX ? { log10(max($0, 1)) } : { $0 }
        var xMin = all.map { transform($0.x) }.min()!
        var xMax = all.map { transform($0.x) }.max()!
        if xMax <= xMin { (xMin, xMax) = (xMin - 1, xMax + 1) }
        let yMin = yRange?.lowerBound ?? 0
        var yMax = yRange?.upperBound ?? max(all.map(\.y).max()!, 1e-9) * 1.1
        if yMax <= yMin { yMax = yMin + 1 }
        let plotWidth = self.width - self.left - self.right
        let plotHeight = self.height - self.top - self.bottom
        func px(_ x: Double) -> Double { self.left + (transform(x) - xMin) / (xMax - xMin) * plotWidth }
        func py(_ y: Double) -> Double { self.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight }
        var svg = self.open(title)
        svg += self.axes()
        for tick in 0...4 {
            let y = yMin + (yMax - yMin) * Double(tick) / 4
            svg += "<line x1=\"\(f(self.left))\" y1=\"\(f(py(y)))\" x2=\"\(f(self.width - self.right))\" y2=\"\(f(py(y)))\" stroke=\"#e5e7eb\"/>"
            svg += "<text x=\"\(f(self.left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\" class=\"t\">\(escape(yFormat(y)))</text>"
        }
        var ticks: [Double] = []
        if logX {
            var exponent = floor(xMin)
            while exponent <= ceil(xMax) {
                for step in [1.0, 2.0, 5.0] {
                    let tick = step * pow(10, exponent)
                    if transform(tick) >= xMin - 1e-9, transform(tick) <= xMax + 1e-9 { ticks.append(tick) }
                }
                exponent += 1
            }
        } else {
            for tick in 0...4 { ticks.append(xMin + (xMax - xMin) * Double(tick) / 4) }
        }
        for x in ticks {
            svg +=
                "<text x=\"\(f(px(x)))\" y=\"\(f(self.height - self.bottom + 16))\" text-anchor=\"middle\" class=\"t\">\(escape(xFormat(x)))</text>"
        }
        for (index, line) in series.enumerated() where !line.points.isEmpty {
            let path = line.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"\(path)\"/>"
            if line.points.count == 1, let point = line.points.first {
                svg += "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"3\" fill=\"\(line.color)\"/>"
            }
            let legendX = self.width - self.right - Double(series.count - index) * 130
            svg += "<rect x=\"\(f(legendX))\" y=\"6\" width=\"12\" height=\"4\" fill=\"\(line.color)\"/>"
            svg += "<text x=\"\(f(legendX + 16))\" y=\"12\" class=\"t\">\(escape(line.name))</text>"
        }
        return svg + "</svg>"
    }

    /// Vertical bars with a label under each.
    static func bars(
        _ values: [(label: String, value: Double, color: String)],
        title: String,
        yFormat: (Double) -> String,
        reference: Double? = nil
    ) -> String {
        guard !values.isEmpty else { return self.empty(title) }
        let yMax = max(values.map(\.value).max()!, reference ?? 0, 1e-9) * 1.1
        let plotWidth = self.width - self.left - self.right
        let plotHeight = self.height - self.top - self.bottom
        let slot = plotWidth / Double(values.count)
        func py(_ y: Double) -> Double { self.top + (1 - y / yMax) * plotHeight }
        var svg = self.open(title)
        svg += self.axes()
        for tick in 0...4 {
            let y = yMax * Double(tick) / 4
            svg += "<text x=\"\(f(self.left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\" class=\"t\">\(escape(yFormat(y)))</text>"
        }
        let labelEvery = max(1, (values.count + 6) / 7)
        for (index, bar) in values.enumerated() {
            let x = self.left + Double(index) * slot + slot * 0.1
            svg +=
                "<rect x=\"\(f(x))\" y=\"\(f(py(bar.value)))\" width=\"\(f(slot * 0.8))\" height=\"\(f(max(0, py(0) - py(bar.value))))\" fill=\"\(bar.color)\"><title>\(escape(bar.label)): \(escape(yFormat(bar.value)))</title></rect>"
            if index % labelEvery == 0 {
                svg +=
                    "<text x=\"\(f(x + slot * 0.4))\" y=\"\(f(self.height - self.bottom + 16))\" text-anchor=\"middle\" class=\"t\">\(escape(String(bar.label.prefix(12))))</text>"
            }
        }
        if let reference {
            svg +=
                "<line x1=\"\(f(self.left))\" y1=\"\(f(py(reference)))\" x2=\"\(f(self.width - self.right))\" y2=\"\(f(py(reference)))\" stroke=\"#111827\" stroke-dasharray=\"4 3\"/>"
            svg +=
                "<text x=\"\(f(self.width - self.right))\" y=\"\(f(py(reference) - 4))\" text-anchor=\"end\" class=\"t\">overall \(escape(yFormat(reference)))</text>"
        }
        return svg + "</svg>"
    }

    private static func open(_ title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(self.width)) \(Int(self.height))\" width=\"\(Int(self.width))\" height=\"\(Int(self.height))\" role=\"img\" aria-label=\"\(escape(title))\"><title>\(escape(title))</title>"
            + "<text x=\"\(f(self.left))\" y=\"12\" class=\"t\" font-weight=\"600\">\(escape(title))</text>"
    }

    private static func axes() -> String {
        "<line x1=\"\(f(self.left))\" y1=\"\(f(self.top))\" x2=\"\(f(self.left))\" y2=\"\(f(self.height - self.bottom))\" stroke=\"#6b7280\"/>"
            + "<line x1=\"\(f(self.left))\" y1=\"\(f(self.height - self.bottom))\" x2=\"\(f(self.width - self.right))\" y2=\"\(f(self.height - self.bottom))\" stroke=\"#6b7280\"/>"
    }

    private static func empty(_ title: String) -> String {
        self.open(title) + "<text x=\"\(Int(self.width / 2))\" y=\"\(Int(self.height / 2))\" text-anchor=\"middle\" class=\"t\">no data</text></svg>"
    }

    private static func f(_ value: Double) -> String { Units.fixed(value, decimals: 1) }
}

/// Escapes text for HTML and SVG.
func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
