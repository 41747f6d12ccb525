import Foundation
import ShadowCore
import ShadowFixtures
import Testing

@testable import ShadowProxy

@Suite(.timeLimit(.minutes(2))) struct MetricsTests {
    @Test func metricsExposeTrafficCoverageDivergenceAndLatency() async throws {
        let baseline = ModelFixture(spec: ModelSpec(version: "1"))
        let candidate = ModelFixture(spec: ModelSpec(version: "2", disagreeRate: 0.3))
        try await withSidecar(
            baseline: .responder(baseline.responder),
            candidates: [("next", .responder(candidate.responder))],
            configure: { configuration in
                configuration.routes[0].scorer = ScorerConfiguration(kind: .label, outputProtocol: .kserveV2)
                configuration.routes[0].candidates[0].timeout = .seconds(5)  // no timeouts even if the machine stalls
            }
        ) { sidecar, _, _ in
            let traffic = ReplayRequest.generated(count: 100)
            let expected = traffic.filter { candidate.plannedOutcome(forBody: $0.body) == .disagree }.count
            _ = try await Replayer(port: sidecar.port, requests: traffic, concurrency: 4).run()
            let client = try await sidecar.client()
            _ = try await client.send(path: "/unrouted-but-prefix-is-slash-so-routed")
            await client.close()
            let adminPort = try #require(await sidecar.sidecar.admin?.address.port())
            let admin = try await HTTPTestClient.connect(port: adminPort)
            // Scrape once every pair is written (the writer flushes within its interval).
            let written = #"shadowd_pairs_compared_total{route="models",candidate="next"} 101"#
            var response = try await admin.send(path: "/metrics")
            for _ in 0..<100 where !response.text.contains(written) {
                try await Task.sleep(for: .milliseconds(50))
                response = try await admin.send(path: "/metrics")
            }
            await admin.close()
            #expect(response.status == 200)
            #expect(response.header("content-type")?.hasPrefix("text/plain") == true)
            let text = response.text
            #expect(text.contains(#"shadowd_responses_total{route="models",status="2xx"} 100"#), "\(text.prefix(2000))")
            #expect(text.contains(#"shadowd_responses_total{route="models",status="4xx"} 1"#))
            #expect(text.contains(#"shadowd_coverage_total{route="models",candidate="next",reason="compared"} 101"#))
            // Every pair that could be compared was; its divergence is the fixture's known rate.
            #expect(text.contains(#"shadowd_pairs_diverged_total{route="models",candidate="next"} \#(expected)"#), "\(text.prefix(3000))")
            #expect(text.contains(#"shadowd_upstream_duration_seconds_count{route="models",arm="baseline"} 101"#))
            #expect(text.contains(#"shadowd_upstream_duration_seconds_count{route="models",arm="next"}"#))
            for gauge in [
                "shadowd_record_queue_depth", "shadowd_shadow_pending 0", "shadowd_recording_healthy 1", "shadowd_database_bytes",
                "shadowd_writer_batch_size_count", "shadowd_writer_batch_duration_seconds_count",
            ] {
                #expect(text.contains(gauge), "missing \(gauge)")
            }
        }
    }
}
