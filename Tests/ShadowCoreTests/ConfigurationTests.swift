import Foundation
import Testing

@testable import ShadowCore

@Suite struct ConfigurationTests {
    static let minimal = """
        routes:
          - name: r
            prefix: /v2/
            baseline: {url: "http://127.0.0.1:9001"}
            candidates:
              - {name: c, url: "http://127.0.0.1:9002"}
        """

    @Test func theShippedExampleIsValid() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/configs/example.yaml")
        let configuration = try Configuration.load(yaml: String(contentsOf: url, encoding: .utf8))
        #expect(configuration.server.listen == HostPort(host: "127.0.0.1", port: 8080))
        #expect(configuration.admin.listen == HostPort(host: "127.0.0.1", port: 8081))
        #expect(configuration.routes.count == 1)
        let route = try #require(configuration.routes.first)
        #expect(route.baseline.url == UpstreamURL(host: "127.0.0.1", port: 9001))
        #expect(route.candidates.map(\.name) == ["classifier-v2"])
        #expect(route.candidates[0].timeout == .seconds(5))
        #expect(route.scorer.ignorePaths == ["$.outputs[*].parameters"])
        #expect(route.scorer.outputProtocol == .kserveV2)
        #expect(route.noiseFloor == NoiseFloorConfiguration(samplePercent: 5, maxDisagreement: 0.01, minPairs: 50, autoIgnore: false))
        #expect(route.mirrorTargets.map(\.name) == ["classifier-v2", "aa-replica"])
        #expect(route.mirrorTargets[1].url == route.baseline.url)
        #expect(configuration.limits.maxHeaderBytes == 64 * 1024)
        #expect(configuration.storage.flushInterval == .milliseconds(50))
    }

    @Test func theShippedGatingExampleIsValid() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/configs/gating.yaml")
        let route = try #require(try Configuration.load(yaml: String(contentsOf: url, encoding: .utf8)).routes.first)
        #expect(route.prefix == "/v2/" && route.samplePercent == 10 && route.sampleKey == .header("x-user-id"))
        #expect(route.gates.include.count == 1 && route.gates.exclude.count == 4)
        #expect(route.circuitBreaker?.maxErrorRate == 0.2 && route.rateLimit?.perSecond == 50)
        #expect(route.ramp?.stages.map(\.percent) == [1, 5, 20, 50, 100])
    }

    @Test func defaultsApplyToAMinimalFile() throws {
        let configuration = try Configuration.load(yaml: Self.minimal)
        #expect(configuration.storage.path == "shadow.sqlite")
        #expect(configuration.routes[0].samplePercent == 100)
        #expect(configuration.routes[0].scorer.kind == .json)
        #expect(configuration.revision.count == 16)
        #expect(configuration.storage.bodies == .full)
    }

    @Test func bodiesCanBeStoredCompressed() throws {
        let configuration = try Configuration.load(yaml: "storage: {bodies: compressed}\n" + Self.minimal)
        #expect(configuration.storage.bodies == .compressed)
    }

    @Test func guardrailsDefaultAtTheTopAndOverridePerRoute() throws {
        let yaml = """
            guardrails: {max_divergence_above_noise: 0.02, max_p99_regression: 25ms, min_pairs: 500}
            routes:
              - name: a
                prefix: /a
                baseline: {url: "http://127.0.0.1:9001", cost: {per_request: 0.002}}
                candidates:
                  - {name: c, url: "http://127.0.0.1:9002", cost: {per_1k_prompt_tokens: 0.5, per_1k_completion_tokens: 1.5}}
                segment: {header: X-Tenant}
              - name: b
                prefix: /b
                baseline: {url: "http://127.0.0.1:9001"}
                guardrails: {max_p99_regression: 10%, max_cost_increase: 0.2}
                segment: {field: $.user.country}
            """
        let configuration = try Configuration.load(yaml: yaml)
        let a = configuration.routes[0]
        #expect(a.guardrails == GuardrailConfiguration(maxDivergenceAboveNoise: 0.02, maxP99Regression: .absolute(.milliseconds(25)), minPairs: 500))
        #expect(a.segment == .header("X-Tenant") && a.segmentHeader == "X-Tenant")
        #expect(a.baseline.cost == CostConfiguration(perRequest: 0.002))
        #expect(a.candidates[0].cost?.usesTokens == true)
        let b = configuration.routes[1]
        #expect(b.guardrails.maxDivergenceAboveNoise == 0.02 && b.guardrails.minPairs == 500, "route keys override, the rest stays")
        #expect(b.guardrails.maxP99Regression == .relative(0.1) && b.guardrails.maxCostIncrease == 0.2)
        #expect(b.segment == .field("$.user.country") && b.segmentHeader == nil)
    }

    @Test func httpsUpstreamsTakeTLSSettings() throws {
        let configuration = try Configuration.load(
            yaml: """
                upstreams: {allow_hosts: [api.openai.com]}
                routes:
                  - name: r
                    prefix: /
                    baseline: {url: "https://api.openai.com/v1"}
                    candidates:
                      - name: internal
                        url: "https://127.0.0.1:8443"
                        tls:
                          ca_file: /etc/shadowd/internal-ca.pem
                          client_certificate: /etc/shadowd/client.crt
                          client_key: "${credential:client.key}"
                          server_name: models.internal
                          min_version: "1.3"
                """
        )
        let baseline = configuration.routes[0].baseline
        #expect(baseline.url == UpstreamURL(host: "api.openai.com", port: 443, basePath: "/v1", usesTLS: true))
        #expect(baseline.url.hostHeader == "api.openai.com" && !baseline.url.hostIsAddress)
        #expect(baseline.tls == UpstreamTLSConfiguration(key: "routes[0].baseline.tls"), "system trust store, host name from the URL")
        let tls = try #require(configuration.routes[0].candidates[0].tls)
        #expect(tls.caFile == .path("/etc/shadowd/internal-ca.pem") && tls.clientKey == .credential("client.key"))
        #expect(tls.serverName == "models.internal" && tls.minimumVersion == .v1_3)
        #expect(configuration.routes[0].candidates[0].url.hostIsAddress)
    }

    /// `hostHeader` is stored, not computed per request: it follows every field it is made of.
    @Test func theHostHeaderFollowsItsFields() throws {
        var url = UpstreamURL(host: "::1", port: 80)
        #expect(url.hostHeader == "[::1]")
        url.port = 8080
        #expect(url.hostHeader == "[::1]:8080")
        url.host = "models.internal"
        #expect(url.hostHeader == "models.internal:8080")
        url.port = 443
        #expect(url.hostHeader == "models.internal:443")
        url.usesTLS = true
        #expect(url.hostHeader == "models.internal")
        #expect(try UpstreamURL.parse("https://models.internal:8443/v1").get().hostHeader == "models.internal:8443")
    }

    @Test func anEgressProxyAppliesOutsideNoProxy() throws {
        let configuration = try Configuration.load(
            yaml: """
                upstreams:
                  allow_hosts: [proxy.corp, api.openai.com]
                  proxy: http://proxy.corp:3128
                  no_proxy: [localhost, .internal, corp]
                routes:
                  - name: r
                    prefix: /
                    baseline: {url: "https://api.openai.com"}
                """
        )
        let proxy = try #require(configuration.egressProxy)
        #expect(proxy.host == "proxy.corp" && proxy.port == 3128)
        #expect(proxy.applies(to: "api.openai.com") && proxy.applies(to: "127.0.0.1"))
        #expect(!proxy.applies(to: "localhost") && !proxy.applies(to: "models.internal") && !proxy.applies(to: "gpu.corp"))
        #expect(!proxy.applies(to: "corp") && proxy.applies(to: "notcorp"))
        #expect(!EgressProxyConfiguration(host: "p", port: 1).applies(to: "127.0.0.1"), "loopback is direct by default")
        #expect(!EgressProxyConfiguration(host: "p", port: 1, noProxy: ["*"]).applies(to: "api.openai.com"))
        #expect(throws: ConfigurationError.self) {
            try Configuration.load(yaml: "upstreams: {proxy: \"https://127.0.0.1:3128\"}\n" + Self.minimal)
        }
    }

    @Test func headersAndCredentialsParse() throws {
        let configuration = try Configuration.load(
            yaml: """
                upstreams: {credential_headers: [Authorization, X-Secret]}
                routes:
                  - name: r
                    prefix: /
                    baseline:
                      url: "http://127.0.0.1:9001"
                      headers: {set: {Authorization: "Bearer ${env:OPENAI_API_KEY}"}, remove: [X-Debug]}
                    candidates:
                      - name: c
                        url: "http://127.0.0.1:9002"
                        forward_credentials: true
                        headers: {set: {X-Api-Key: "${credential:other-key}", X-Team: "ml ${file:/etc/team}!"}}
                """
        )
        #expect(configuration.credentialHeaders == ["authorization", "x-secret"])
        let baseline = configuration.routes[0].baseline.headers
        #expect(baseline.remove == ["x-debug"] && baseline.set.map(\.name) == ["Authorization"])
        #expect(baseline.set[0].value.parts == [.text("Bearer "), .environment("OPENAI_API_KEY")])
        #expect(baseline.set[0].key == "routes[0].baseline.headers.set.Authorization")
        let candidate = configuration.routes[0].candidates[0]
        #expect(candidate.forwardCredentials && candidate.headers.set[1].value.description == "ml ${file:/etc/team}!")
        let resolved = try candidate.headers.set[1].value.resolve(key: "k", environment: [:]) { $0 == "/etc/team" ? "platform\n" : nil }
        #expect(resolved == "ml platform!")
        #expect(throws: ConfigurationError.self) {
            try candidate.headers.set[0].value.resolve(key: "k", environment: [:]) { _ in "x" }
        }
        #expect(try Configuration.load(yaml: Self.minimal).credentialHeaders.contains("authorization"))
    }

    @Test func aCandidatesBodyRewriteParsesAndApplies() throws {
        let configuration = try Configuration.load(
            yaml: """
                routes:
                  - name: r
                    prefix: /
                    baseline: {url: "http://127.0.0.1:9001"}
                    candidates:
                      - name: c
                        url: "http://127.0.0.1:9002"
                        rewrite:
                          set: {"$.model": llama-3.1-8b-instruct, "$.temperature": 0, "$.messages[*].name": '"anon"', "$.options.seed": 7}
                          remove: ["$.user", "$.messages[1]"]
                """
        )
        let rewrite = configuration.routes[0].candidates[0].rewrite
        let request = try JSONParser().parse(
            #"{"model":"gpt-4o","user":"u-42","temperature":0.7,"messages":[{"role":"system","content":"a","name":"x"},{"role":"user","content":"b"}]}"#
        )
        let expected = try JSONParser().parse(
            #"{"model":"llama-3.1-8b-instruct","temperature":0,"messages":[{"role":"system","content":"a","name":"anon"}]}"#
        )
        // "$.options.seed" is not added: its parent object does not exist.
        #expect(rewrite.apply(to: request) == expected, "\(rewrite.apply(to: request).serialized)")
        #expect(throws: ConfigurationError.self) {
            try Configuration.load(
                yaml:
                    "routes:\n  - name: r\n    prefix: /\n    baseline: {url: \"http://127.0.0.1:1\"}\n    candidates:\n      - {name: c, url: \"http://127.0.0.1:2\", rewrite: {remove: [model]}}"
            )
        }
    }

    @Test func theRevisionChangesWithTheText() throws {
        let a = try Configuration.load(yaml: Self.minimal)
        let b = try Configuration.load(yaml: Self.minimal + "\n# edited\n")
        #expect(a.revision != b.revision)
    }

    /// The line an operator is pointed to is the line of the offending key or value.
    @Test(arguments: [
        ("routes:\n  - name: r\n    prefix: a\n    baseline: {url: \"http://127.0.0.1:1\"}", 3),
        ("routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", timeout: soon}", 4),
        ("routes:\n  - name: r\n    prefix: /a\n\n    samplepercent: 5\n    baseline: {url: \"http://127.0.0.1:1\"}", 5),
        ("# a comment\nstorage:\n  synchronous: sometimes\n" + minimal, 3),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n  - name: r\n    prefix: /b\n    baseline: {url: \"http://127.0.0.1:1\"}",
            5
        ),
    ])
    func errorsGiveTheLine(yaml: String, line: Int) {
        #expect {
            _ = try Configuration.load(yaml: yaml)
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.line == line && "\(error)".hasSuffix("(line \(line))")
        }
    }

    @Test(arguments: [
        ("", "the configuration is empty"),
        ("routes: []", "routes: at least one route is required"),
        ("routes:\n  - name: r\n    prefix: /a\n", "routes[0].baseline: is required"),
        ("routes:\n  - name: r\n    prefix: a\n    baseline: {url: \"http://127.0.0.1:1\"}", "routes[0].prefix: must start with '/'"),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"ftp://127.0.0.1:1\"}",
            "routes[0].baseline.url: expected an http://, https:// or h2c:// URL"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", tls: {ca_file: /etc/ca.pem}}",
            "routes[0].baseline.tls: applies to https:// URLs only"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"https://127.0.0.1:1\", tls: {client_certificate: /c.pem}}",
            "routes[0].baseline.tls.client_key: is required with client_certificate"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"https://127.0.0.1:1\", tls: {min_version: \"1.1\"}}",
            "routes[0].baseline.tls.min_version: unknown value '1.1'"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"https://127.0.0.1:1\", tls: {insecure_skip_verify: true}}",
            "routes[0].baseline.tls.insecure_skip_verify: unknown key"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://example.com:80\"}",
            "routes[0].baseline.url: host 'example.com' is not loopback"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", timeout: 99999999999999s}",
            "routes[0].baseline.timeout"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", timeout: soon}",
            "routes[0].baseline.timeout: expected a duration"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    sample_percent: 150\n    baseline: {url: \"http://127.0.0.1:1\"}",
            "routes[0].sample_percent: must be between 0"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    samplepercent: 5\n    baseline: {url: \"http://127.0.0.1:1\"}",
            "routes[0].samplepercent: unknown key"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n    scorer: {kind: magic}",
            "routes[0].scorer.kind: unknown value 'magic' (known: exact, json, label"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n    scorer: {ignore_paths: [\"id\"]}",
            "routes[0].scorer.ignore_paths[0]: a path must start with '$'"
        ),
        ("limits: {max_request_body: 1KiB, mirror_max_body: 2KiB}\n" + minimal, "limits.mirror_max_body: must not exceed"),
        ("server: {listen: nowhere}\n" + minimal, "server.listen: expected host:port"),
        ("storage: {synchronous: sometimes}\n" + minimal, "storage.synchronous: expected normal or full"),
        ("storage: {redact: {json_paths: [\"user.email\"]}}\n" + minimal, "storage.redact.json_paths[0]: a path must start with '$'"),
        ("storage: {redact: {json_paths: [\"$.a\"], mode: blur}}\n" + minimal, "storage.redact.mode: unknown value 'blur'"),
        ("storage: {bodies: encrypted}\n" + minimal, "storage.bodies: unknown value 'encrypted' (known: full, compressed, hash)"),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n  - name: r\n    prefix: /b\n    baseline: {url: \"http://127.0.0.1:1\"}",
            "routes[1].name: duplicate route name"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n    candidates:\n      - {name: c, url: \"http://127.0.0.1:2\"}\n      - {name: c, url: \"http://127.0.0.1:3\"}",
            "routes[0].candidates[1].name: duplicate candidate name"
        ),
        ("routes: [unclosed", "not valid YAML"),
        ("guardrails: {max_p99_regression: lots}\n" + minimal, "guardrails.max_p99_regression: expected a duration such as 25ms or a share"),
        ("guardrails: {max_divergence_above_noise: 5}\n" + minimal, "guardrails.max_divergence_above_noise: must be between 0"),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n    segment: {header: X-A, field: $.a}",
            "routes[0].segment.header: give exactly one of 'header' or 'field'"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\"}\n    segment: {field: \"$.a[*]\"}",
            "routes[0].segment.field: must name one value"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", cost: {per_request: -1}}",
            "routes[0].baseline.cost.per_request: must be between 0"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", headers: {set: {Authorization: \"Bearer ${env:KEY\"}}}",
            "routes[0].baseline.headers.set.Authorization: unterminated '${'"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", headers: {set: {Authorization: \"${vault:KEY}\"}}}",
            "routes[0].baseline.headers.set.Authorization: unknown source 'vault'"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", headers: {set: {\"Bad Name\": x}}}",
            "routes[0].baseline.headers.set.Bad Name: not a valid header name"
        ),
        (
            "routes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://127.0.0.1:1\", headers: {remove: [Host]}}",
            "host is set by the sidecar itself"
        ),
    ])
    func invalidFilesNameTheKeyAndTheReason(yaml: String, expected: String) {
        #expect {
            _ = try Configuration.load(yaml: yaml)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func theReplicaNameIsReserved() {
        let yaml = """
            routes:
              - name: r
                prefix: /
                baseline: {url: "http://127.0.0.1:1"}
                candidates: [{name: aa-replica, url: "http://127.0.0.1:2"}]
                noise_floor: {sample_percent: 10}
            """
        #expect {
            _ = try Configuration.load(yaml: yaml)
        } throws: { "\($0)".contains("'aa-replica' is reserved") }
    }

    @Test func nonLoopbackHostsNeedTheAllowList() throws {
        let yaml =
            "upstreams: {allow_hosts: [models.internal]}\nroutes:\n  - name: r\n    prefix: /a\n    baseline: {url: \"http://models.internal:8000/base/\"}"
        let configuration = try Configuration.load(yaml: yaml)
        #expect(configuration.routes[0].baseline.url == UpstreamURL(host: "models.internal", port: 8000, basePath: "/base"))
    }

    @Test func unitsParse() {
        #expect(Units.parseDuration("250ms") == .milliseconds(250))
        #expect(Units.parseDuration("1.5s") == .milliseconds(1500))
        #expect(Units.parseDuration("2m") == .seconds(120))
        #expect(Units.parseDuration("40") == .milliseconds(40))
        #expect(Units.parseDuration("-1s") == nil)
        // Found by the config fuzzer: durations beyond Int64 nanoseconds trapped the loader.
        #expect(Units.parseDuration("99999999999999s") == nil)
        #expect(Units.parseDuration("1e300") == nil)
        #expect(Units.parseDuration("nan") == nil && Units.parseDuration("infs") == nil)
        #expect(Units.parseDuration("292y") == nil)
        #expect(Units.parseByteCount("64KiB") == 65536)
        #expect(Units.parseByteCount("10MiB") == 10 << 20)
        #expect(Units.parseByteCount("12") == 12)
        #expect(Units.parseByteCount("lots") == nil)
    }

    @Test func hostPortParsesIPv6() {
        #expect(HostPort(parsing: "[::1]:8080") == HostPort(host: "::1", port: 8080))
        #expect(HostPort(parsing: "127.0.0.1:0") == HostPort(host: "127.0.0.1", port: 0))
        #expect(HostPort(parsing: "127.0.0.1") == nil)
        #expect(HostPort(parsing: "127.0.0.1:99999") == nil)
    }
}
