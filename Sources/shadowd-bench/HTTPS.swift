import ArgumentParser
import Foundation
import ShadowFixtures

extension BenchCommand {
    /// An HTTPS baseline (nginx with a certificate from a throwaway CA, as a hosted API): calling
    /// it directly over HTTPS, through nginx's plain proxy with a keep-alive TLS upstream, and
    /// through shadowd (plain to the client, verified TLS to the baseline, a plain fast
    /// candidate). Rounds alternate targets; medians; handshakes per 10,000 requests from
    /// shadowd's `/stats`.
    struct HTTPS: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "https",
            abstract: "HTTPS baseline: shadowd vs a direct HTTPS call vs nginx proxying to it, and TLS handshakes per 10k requests."
        )

        @Option(help: "Seconds per measurement.")
        var duration: Int = 3

        @Option(help: "Rounds; each round measures every target once.")
        var rounds: Int = 3

        @Option(parsing: .upToNextOption, help: "wrk connection counts to measure.")
        var connections: [Int] = [1, 32]

        func run() async throws {
            for tool in ["wrk", "nginx", "taskset"] where which(tool) == nil {
                throw ValidationError("\(tool) is missing: apt-get install -y wrk nginx-light util-linux (scripts/bench/run does it)")
            }
            let directory = NSTemporaryDirectory() + "shadowd-bench-https-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let authority = try TestCertificateAuthority()
            try authority.certificatePEM.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
            let (certificate, key) = try authority.issue().write(to: directory, name: "server")
            let (tlsPort, candidatePort, nginxProxyPort, sidecarPort, adminPort) = (28_101, 28_102, 28_103, 28_104, 28_105)
            // The same sidecar with the same answer served plain: what TLS itself costs shadowd.
            let (plainSidecarPort, plainAdminPort) = (28_106, 28_107)
            let answer =
                #"{"model_name":"m","model_version":"1","outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["cat"]}],"pad":"\#(String(repeating: "x", count: 80))"}"#
            try """
            worker_processes 1;
            daemon off;
            error_log \(directory)/nginx-error.log;
            pid \(directory)/nginx.pid;
            events { worker_connections 4096; }
            http {
              access_log off;
              keepalive_requests 1000000;
              proxy_temp_path \(directory);
              upstream tls_base { server 127.0.0.1:\(tlsPort); keepalive 64; }
              server {
                listen 127.0.0.1:\(tlsPort) ssl;
                ssl_certificate \(certificate);
                ssl_certificate_key \(key);
                location / { default_type application/json; return 200 '\(answer)'; }
              }
              server { listen 127.0.0.1:\(candidatePort); location / { default_type application/json; return 200 '\(answer)'; } }
              server {
                listen 127.0.0.1:\(nginxProxyPort);
                location / {
                  proxy_pass https://tls_base; proxy_http_version 1.1; proxy_set_header Connection "";
                  proxy_ssl_verify on; proxy_ssl_trusted_certificate \(directory)/ca.pem; proxy_ssl_name localhost;
                  proxy_ssl_session_reuse on;
                }
              }
            }
            """.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            try """
            server: {listen: "127.0.0.1:\(sidecarPort)", threads: 1}
            admin: {listen: "127.0.0.1:\(adminPort)"}
            storage: {path: \(directory)/bench.sqlite}
            routes:
              - name: bench
                prefix: /
                baseline: {url: "https://127.0.0.1:\(tlsPort)", tls: {ca_file: \(directory)/ca.pem}, idle_timeout: 60s}
                candidates: [{name: c, url: "http://127.0.0.1:\(candidatePort)", timeout: 1s}]
                scorer: {kind: json, protocol: kserve_v2}
            """.write(toFile: directory + "/shadowd.yaml", atomically: true, encoding: .utf8)
            try """
            server: {listen: "127.0.0.1:\(plainSidecarPort)", threads: 1}
            admin: {listen: "127.0.0.1:\(plainAdminPort)"}
            storage: {path: \(directory)/bench-plain.sqlite}
            routes:
              - name: bench
                prefix: /
                baseline: {url: "http://127.0.0.1:\(candidatePort)"}
                candidates: [{name: c, url: "http://127.0.0.1:\(candidatePort)", timeout: 1s}]
                scorer: {kind: json, protocol: kserve_v2}
            """.write(toFile: directory + "/shadowd-plain.yaml", atomically: true, encoding: .utf8)
            let processes = [
                try spawn(["-c", "0", which("nginx")!, "-c", directory + "/nginx.conf", "-p", directory]),
                try spawn(["-c", "0", siblingBinary("shadowd"), "serve", "--config", directory + "/shadowd.yaml", "--log-level", "warning"]),
                try spawn(["-c", "0", siblingBinary("shadowd"), "serve", "--config", directory + "/shadowd-plain.yaml", "--log-level", "warning"]),
            ]
            defer {
                for process in processes where process.isRunning { process.terminate() }
                for process in processes { process.waitUntilExit() }
                try? FileManager.default.removeItem(atPath: directory)
            }
            let deadline = ContinuousClock.now + .seconds(30)
            for port in [candidatePort, nginxProxyPort, sidecarPort, plainSidecarPort] {
                while httpGet(port: port, path: "/v2/models/m/infer") == nil {
                    guard ContinuousClock.now < deadline else { throw ValidationError("nothing answers on 127.0.0.1:\(port)") }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let targets: [(name: String, port: Int, scheme: String)] = [
                ("direct over HTTPS", tlsPort, "https"), ("nginx proxy → HTTPS", nginxProxyPort, "http"),
                ("shadowd → HTTPS", sidecarPort, "http"), ("shadowd → HTTP (same, plain)", plainSidecarPort, "http"),
            ]
            print(
                "\(self.rounds) round(s) × \(self.duration) s per target; nginx (1 worker: the HTTPS baseline, the candidate, the proxy) and shadowd (1 event loop) on core 0, wrk on core 1"
            )
            for connections in self.connections {
                var results: [String: [WrkResult]] = [:]
                for _ in 0..<self.rounds {
                    for target in targets {
                        results[target.name, default: []].append(
                            try wrk(port: target.port, connections: connections, seconds: self.duration, script: nil, scheme: target.scheme)
                        )
                    }
                }
                let medians = results.mapValues(WrkResult.median)
                Proxy.printTable(method: "GET", connections: connections, rounds: self.rounds, targets: targets.map(\.name), medians: medians)
                let direct = medians["direct over HTTPS"]!
                let nginx = medians["nginx proxy → HTTPS"]!
                let sidecar = medians["shadowd → HTTPS"]!
                let plainSidecar = medians["shadowd → HTTP (same, plain)"]!
                print(
                    String(
                        format:
                            "  ratios (req/s): shadowd/direct %.2f, shadowd/nginx-proxy %.2f, shadowd HTTPS/plain %.2f; added p50 vs direct: shadowd %+.0fµs, nginx proxy %+.0fµs",
                        sidecar.requestsPerSecond / direct.requestsPerSecond,
                        sidecar.requestsPerSecond / nginx.requestsPerSecond,
                        sidecar.requestsPerSecond / plainSidecar.requestsPerSecond,
                        sidecar.p50 - direct.p50,
                        nginx.p50 - direct.p50
                    )
                )
            }
            // Handshakes on a warm pool: a 1 s warm-up at 32 connections, then the counter's
            // change over one measurement. (Between rounds, pools idle longer than 4 s close by
            // design, so each round above starts cold.)
            func counters() -> (handshakes: Double, requests: Double) {
                let stats = httpGet(port: adminPort, path: "/stats") ?? ""
                func field(_ name: String) -> Double {
                    guard let range = stats.range(of: "\"\(name)\":") else { return 0 }
                    return Double(stats[range.upperBound...].prefix { $0.isNumber || $0 == "." }) ?? 0
                }
                return (field("upstream_tls_handshakes"), field("requests"))
            }
            let cold = counters()
            _ = try wrk(port: sidecarPort, connections: 32, seconds: 1, script: nil)
            let warm = counters()
            _ = try wrk(port: sidecarPort, connections: 32, seconds: self.duration, script: nil)
            let after = counters()
            print(
                String(
                    format:
                        "\nshadowd TLS handshakes with the baseline: %.0f in all for %.0f requests; warming 32 connections: %.0f; then %.0f for %.0f requests on the warm pool (%.2f per 10,000)",
                    after.handshakes,
                    after.requests,
                    warm.handshakes - cold.handshakes,
                    after.handshakes - warm.handshakes,
                    after.requests - warm.requests,
                    (after.handshakes - warm.handshakes) / max(1, after.requests - warm.requests) * 10_000
                )
            )
        }
    }
}
