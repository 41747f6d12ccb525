/// Classification: diverged when the predicted labels differ.
///
/// The label is the value itself when it is a string or number, the single element of a
/// one-element list, or the argmax of a probability vector (first row of a matrix).
public struct LabelScorer: ValueScorer {
    public let name = "label"
    let configuration: ScorerConfiguration

    public init(configuration: ScorerConfiguration) {
        self.configuration = configuration
    }

    func compare(_ baseline: JSONValue, _ candidate: JSONValue, documents: DocumentPair) -> Score {
        let left = Self.label(of: baseline)
        let right = Self.label(of: candidate)
        let same = left == right
        let value: Double = same ? 0 : 1
        return Score(
            value: value,
            diverged: self.diverged(value),
            explanation: .object([("baseline_label", .string(left)), ("candidate_label", .string(right))]),
            differingPaths: same ? [] : ["label"]
        )
    }

    static func label(of value: JSONValue) -> String {
        switch value {
        case .string(let text): return text
        case .number(let number): return JSONValue.format(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .array(let elements):
            if elements.count == 1, case .string(let text) = elements[0] { return text }
            if case .array = elements.first { return self.label(of: elements[0]) }
            let numbers = value.flattenedNumbers
            if !numbers.isEmpty, numbers.count == elements.count {
                let best = numbers.indices.max { numbers[$0] < numbers[$1] } ?? 0
                return "argmax=\(best)"
            }
            return value.serialized
        default:
            return value.serialized
        }
    }
}
