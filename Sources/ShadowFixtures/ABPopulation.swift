import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

/// A simulated user population for an A/B experiment with a known truth: each user makes a few
/// requests and converts with the rate of the model that served them; converted users spend a
/// normally distributed amount. Deterministic: the same seed, the same users and outcomes.
public struct ABPopulation: Sendable {
    public var users: Int
    public var seed: UInt64
    /// Conversion rate under the baseline (control) and the candidate (treatment).
    public var controlConversion: Double
    public var treatmentConversion: Double
    /// Mean and spread of a converted user's revenue.
    public var revenueMean: Double
    public var revenueSpread: Double
    /// Share of requests whose answer is clicked, under control and treatment.
    public var controlClickRate = 0.20
    public var treatmentClickRate = 0.21

    public init(users: Int, seed: UInt64 = 42, controlConversion: Double = 0.10, treatmentConversion: Double = 0.12) {
        self.users = users
        self.seed = seed
        self.controlConversion = controlConversion
        self.treatmentConversion = treatmentConversion
        self.revenueMean = 50
        self.revenueSpread = 15
    }

    /// The relative lift on conversion the simulation builds in.
    public var trueLift: Double { self.treatmentConversion / self.controlConversion - 1 }

    /// User `index`'s key and how many requests they make (1 to 4).
    public func user(_ index: Int) -> (key: String, requests: Int) {
        var random = SplitMix64(seed: self.seed ^ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        return ("user-\(index)", 1 + Int(random.next() % 4))
    }

    /// Whether user `index` clicks the answer to their `request`th request, served by `arm`.
    public func clicks(_ index: Int, request: Int, servedBy arm: ExperimentArm) -> Bool {
        var random = SplitMix64(seed: (self.seed &+ 2) ^ UInt64(index &* 8 &+ request) &* 0x1656_67B1_9E37_79F9)
        return random.nextUnit() < (arm == .treatment ? self.treatmentClickRate : self.controlClickRate)
    }

    /// What user `index` does after being served by `arm`: converted or not, and revenue.
    public func outcome(_ index: Int, servedBy arm: ExperimentArm) -> (converted: Bool, revenue: Double) {
        var random = SplitMix64(seed: (self.seed &+ 1) ^ UInt64(index) &* 0xC2B2_AE3D_27D4_EB4F)
        let rate = arm == .treatment ? self.treatmentConversion : self.controlConversion
        guard random.nextUnit() < rate else { return (false, 0) }
        let u = max(random.nextUnit(), 1e-12)
        let v = random.nextUnit()
        let normal = (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        return (true, max(1, self.revenueMean + self.revenueSpread * normal))
    }
}
