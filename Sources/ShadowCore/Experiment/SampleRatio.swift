#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sample ratio check: users per arm against the configured 50/50 split.
public enum SampleRatio {
    /// The chi-square test's p-value (1 degree of freedom).
    public static func pValue(control: Int, treatment: Int) -> Double {
        let total = Double(control + treatment)
        guard total > 0 else { return 1 }
        let expected = total / 2
        let chi2 =
            ((Double(control) - expected) * (Double(control) - expected) + (Double(treatment) - expected) * (Double(treatment) - expected)) / expected
        return erfc((chi2 / 2).squareRoot())
    }

    /// Below this p-value the split is declared broken.
    public static let threshold = 0.001
}
