/// Turns a ``Report`` into a document. One implementation per output format.
public protocol ReportRenderer: Sendable {
    /// The file name extension of the output, without the dot.
    var fileExtension: String { get }
    func render(_ report: Report) throws -> String
}

/// The output formats `shadowd report --format` accepts.
public enum ReportFormat: String, Sendable, CaseIterable {
    /// One self-contained page with inline SVG charts.
    case html
    /// For pasting into a ticket.
    case md
    /// For machines; the shape is ``Report`` at ``Report/formatVersion``.
    case json

    public var renderer: any ReportRenderer {
        switch self {
        case .html: HTMLReportRenderer()
        case .md: MarkdownReportRenderer()
        case .json: JSONReportRenderer()
        }
    }
}
