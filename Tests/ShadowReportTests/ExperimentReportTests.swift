import Foundation
import ShadowCore
import ShadowStore
import Testing

@testable import ShadowReport

/// The report's experiment section from a real database: exposures written through the store,
/// outcomes joined by key and by request id, per-user and per-request metrics to exact figures.
@Suite struct ExperimentReportTests {
    /// 200 users: each makes 2 requests, and the first 20 another 10 (heavy users, so a mean of
    /// users' rates differs from the rate per request). Even users are control, odd treatment.
    /// Control users convert when their index is a multiple of 10, treatment users of 5; a
    /// request is clicked when its index is a multiple of 5 (control) or 3 (treatment).
    static let users = 200
    static func user(_ request: Int) -> Int { request < 2 * users ? request % users : (request - 2 * users) % 20 }
    static func arm(_ request: Int) -> ExperimentArm { Self.user(request) % 2 == 0 ? .control : .treatment }
    static func converts(_ user: Int) -> Bool { user % 2 == 0 ? user % 10 == 0 : user % 5 == 1 }
    static func clicked(_ request: Int) -> Bool { Self.arm(request) == .control ? request % 5 == 0 : request % 3 == 0 }

    @Test func perUserAndPerRequestMetricsComeOutExactly() async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/ab.sqlite"
            var traffic = Traffic()
            traffic.pairs = Self.users * 2 + 200
            var records = traffic.records()
            for index in records.indices {
                let arm = Self.arm(index)
                records[index].exposure = ExperimentExposure(experiment: "ab", key: "u\(Self.user(index))", arm: arm, servedBy: arm)
            }
            let store = try PairStore(path: path)
            try store.write(records, coverage: [:])
            var events: [OutcomeEvent] = []
            for user in 0..<Self.users where Self.converts(user) {
                events.append(
                    OutcomeEvent(requestID: nil, key: "u\(user)", metric: "conversion", value: 1, atMicros: traffic.startMicros + 86_400_000_000)
                )
            }
            for (index, record) in records.enumerated() {
                // A click delivered twice without an event id still counts once; a 0 not at all.
                let click = OutcomeEvent(
                    requestID: record.requestID,
                    key: nil,
                    metric: "click",
                    value: Self.clicked(index) ? 1 : 0,
                    atMicros: traffic.startMicros
                )
                events += index % 3 == 0 ? [click, click] : [click]
            }
            events.append(OutcomeEvent(requestID: "never-seen", key: nil, metric: "click", value: 1, atMicros: traffic.startMicros))
            _ = try store.insertOutcomes(events)
            try store.close()

            var options = ReportOptions(nowMicros: traffic.startMicros + 2 * 86_400_000_000)
            options.configuration = try configuration(
                extraRouteYAML: """
                        experiment:
                          name: ab
                          treatment: v2
                          key: {header: x-user-id}
                          metrics: [{name: conversion, kind: binary}, {name: click, kind: binary, per: request}]
                          primary: conversion
                          min_duration: 0s
                    """
            )
            var builder = ReportBuilder(options: options)
            let reader = try PairReader(path: path)
            try builder.add(reader)
            try reader.close()
            let experiment = try #require(builder.build().experiments?.first)

            #expect(experiment.srm.controlUsers == 100 && experiment.srm.treatmentUsers == 100)
            #expect(experiment.requests == ["control": 300, "treatment": 300], "200 + 100 heavy requests per arm")
            #expect(experiment.unmatchedOutcomes == 1)
            let metrics = Dictionary(uniqueKeysWithValues: experiment.metrics.map { ($0.name, $0) })
            let conversion = try #require(metrics["conversion"])
            let click = try #require(metrics["click"])
            #expect(conversion.per == "user" && click.per == "request")
            // Per user: the share of the arm's users who converted.
            let converted = (
                control: (0..<Self.users).filter { $0 % 2 == 0 && Self.converts($0) }.count,
                treatment: (0..<Self.users).filter { $0 % 2 == 1 && Self.converts($0) }.count
            )
            #expect(conversion.arms.map(\.mean) == [Double(converted.control) / 100, Double(converted.treatment) / 100])
            // Per request: the arm's clicks over its requests, not a mean of users' rates.
            let clicks = (
                control: (0..<600).filter { Self.arm($0) == .control && Self.clicked($0) }.count,
                treatment: (0..<600).filter { Self.arm($0) == .treatment && Self.clicked($0) }.count
            )
            #expect(clicks.control > 0 && clicks.treatment > 0)
            #expect(click.arms.map(\.mean) == [Double(clicks.control) / 300, Double(clicks.treatment) / 300])
            #expect(click.difference.ciLow < click.difference.estimate && click.difference.estimate < click.difference.ciHigh)
            #expect(click.arms.map(\.users) == [100, 100], "the user stays the unit: 100 per arm, not 300 requests")
        }
    }
}
