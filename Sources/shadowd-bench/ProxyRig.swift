import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Everything the proxy benchmark measures, started once and measured in alternation:
/// one nginx worker serving a fixed ~300-byte JSON as baseline and fast candidate, nginx's plain
/// proxy, nginx's `mirror` towards each kind of candidate, one `shadowd serve` (one event
/// loop, 100% mirrored, JSON-scored and recorded) per kind of candidate, and the minimal SwiftNIO
/// mirroring proxy (`shadowd-bench floor`, nothing recorded) towards the fast candidate.
///
/// Pinning (`taskset`): nginx and the sidecars on core 0, wrk and the slow and hung candidates
/// (`shadowd-bench upstream`) on core 1. Only the target being measured is busy, so each proxy
/// has core 0 to itself (sharing it with nginx's backend servers, alike for all of them).
struct ProxyRig {
    /// How the mirrored candidate behaves.
    enum Candidate: String, CaseIterable, ExpressibleByArgument {
        case fast, slow, hung, refused

        var label: String {
            switch self {
            case .fast: "fast"
            case .slow: "200 ms"
            case .hung: "hung"
            case .refused: "refused"
            }
        }
    }

    struct Sidecar {
        var port: Int
        var admin: Int
        var process: Process
    }

    let base: Int
    let plain: Int
    let mirrors: [Candidate: Int]
    let sidecars: [Candidate: Sidecar]
    /// Another build of shadowd with the fast candidate (`--compare`), measured in the same rounds.
    let compared: Sidecar?
    /// The minimal SwiftNIO mirroring proxy (`shadowd-bench floor`) towards the fast candidate.
    let floor: Int
    let directory: String
    /// A wrk script posting a ~1 KB KServe V2 request.
    let postScript: String
    let processes: [Process]

    /// Starts everything and waits until each listener answers.
    static func start(candidates: [Candidate], compare: String? = nil) async throws -> ProxyRig {
        for tool in ["wrk", "nginx", "taskset"] where which(tool) == nil {
            throw ValidationError("\(tool) is missing: apt-get install -y wrk nginx-light util-linux (scripts/bench/run does it)")
        }
        let directory = NSTemporaryDirectory() + "shadowd-bench-proxy-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var processes: [Process] = []
        var next = 28_001
        func port() -> Int {
            defer { next += 1 }
            return next
        }
        let base = port()
        let fast = port()
        let plain = port()
        // Where each kind of candidate listens (refused: a port nothing listens on).
        var candidatePorts: [Candidate: Int] = [.fast: fast]
        for candidate in candidates where candidate != .fast {
            let candidatePort = port()
            candidatePorts[candidate] = candidatePort
            guard candidate != .refused else { continue }
            let behaviour = candidate == .slow ? ["--delay-ms", "200"] : ["--hang"]
            processes.append(try spawn(["-c", "1", CommandLine.arguments[0], "upstream", "--port", "\(candidatePort)"] + behaviour))
        }
        var mirrors: [Candidate: Int] = [:]
        for candidate in candidates { mirrors[candidate] = port() }
        let body =
            #"{"model_name":"m","model_version":"1","outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["cat"]},{"name":"probabilities","datatype":"FP32","shape":[3],"data":[0.7,0.2,0.1]}],"pad":"\#(String(repeating: "x", count: 80))"}"#
        try Self.nginxConfig(
            directory: directory,
            base: base,
            fast: fast,
            plain: plain,
            mirrors: mirrors,
            candidatePorts: candidatePorts,
            answer: body
        )
        .write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        processes.append(try spawn(["-c", "0", which("nginx")!, "-c", directory + "/nginx.conf", "-p", directory]))
        func sidecar(_ name: String, candidatePort: Int, binary: String) throws -> Sidecar {
            let (listen, admin) = (port(), port())
            let configuration = directory + "/shadowd-\(name).yaml"
            try """
            server: {listen: "127.0.0.1:\(listen)", threads: 1}
            admin: {listen: "127.0.0.1:\(admin)"}
            storage: {path: \(directory)/bench-\(name).sqlite}
            routes:
              - name: bench
                prefix: /
                baseline: {url: "http://127.0.0.1:\(base)"}
                candidates: [{name: c, url: "http://127.0.0.1:\(candidatePort)", timeout: 1s}]
                scorer: {kind: json, protocol: kserve_v2}
            """.write(toFile: configuration, atomically: true, encoding: .utf8)
            let process = try spawn(["-c", "0", binary, "serve", "--config", configuration, "--log-level", "warning"])
            processes.append(process)
            return Sidecar(port: listen, admin: admin, process: process)
        }
        var sidecars: [Candidate: Sidecar] = [:]
        for candidate in candidates {
            sidecars[candidate] = try sidecar(candidate.rawValue, candidatePort: candidatePorts[candidate]!, binary: siblingBinary("shadowd"))
        }
        let compared = try compare.map { try sidecar("compared", candidatePort: fast, binary: $0) }
        let floor = port()
        processes.append(
            try spawn(["-c", "0", CommandLine.arguments[0], "floor", "--port", "\(floor)", "--baseline", "\(base)", "--candidate", "\(fast)"])
        )
        let script = directory + "/post.lua"
        try """
        wrk.method = "POST"
        wrk.body = '{"id":"x","inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[\(Array(repeating: "1.5", count: 150).joined(separator: ","))]}]}'
        wrk.headers["Content-Type"] = "application/json"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let rig = ProxyRig(
            base: base,
            plain: plain,
            mirrors: mirrors,
            sidecars: sidecars,
            compared: compared,
            floor: floor,
            directory: directory,
            postScript: script,
            processes: processes
        )
        try await rig.waitUntilListening(
            [base, plain, floor] + Array(mirrors.values) + sidecars.values.map(\.port) + (compared.map { [$0.port] } ?? [])
        )
        return rig
    }

    private func waitUntilListening(_ ports: [Int]) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        for port in ports {
            while httpGet(port: port, path: "/v2/models/m/infer") == nil {
                guard ContinuousClock.now < deadline else {
                    self.stop()
                    throw ValidationError("nothing answers on 127.0.0.1:\(port)")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func stop() {
        for process in self.processes where process.isRunning { process.terminate() }
        for process in self.processes { process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    static func nginxConfig(
        directory: String,
        base: Int,
        fast: Int,
        plain: Int,
        mirrors: [Candidate: Int],
        candidatePorts: [Candidate: Int],
        answer: String
    ) -> String {
        // One upstream block per candidate, keep-alive like the baseline's, so nginx is measured
        // at its best; the mirror subrequest has the same 1 s timeout as the sidecar's candidate.
        let upstreams = mirrors.keys.map { "upstream cand_\($0.rawValue) { server 127.0.0.1:\(candidatePorts[$0]!); keepalive 64; }" }
        let mirrorServers = mirrors.map { candidate, port in
            """
            server {
                listen 127.0.0.1:\(port);
                location / { mirror /mirror; proxy_pass http://base; proxy_http_version 1.1; proxy_set_header Connection ""; }
                location = /mirror {
                  internal; proxy_pass http://cand_\(candidate.rawValue)$request_uri; proxy_http_version 1.1; proxy_set_header Connection "";
                  proxy_connect_timeout 1s; proxy_read_timeout 1s;
                }
              }
            """
        }
        return """
            worker_processes 1;
            daemon off;
            error_log \(directory)/nginx-error.log;
            pid \(directory)/nginx.pid;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path \(directory);
              proxy_temp_path \(directory);
              upstream base { server 127.0.0.1:\(base); keepalive 64; }
              \(upstreams.joined(separator: "\n  "))
              server { listen 127.0.0.1:\(base); location / { default_type application/json; return 200 '\(answer)'; } }
              server { listen 127.0.0.1:\(fast); location / { default_type application/json; return 200 '\(answer)'; } }
              server { listen 127.0.0.1:\(plain); location / { proxy_pass http://base; proxy_http_version 1.1; proxy_set_header Connection ""; } }
              \(mirrorServers.joined(separator: "\n  "))
            }
            """
    }
}

/// A GET over HTTP/1.0 on loopback, read until the server closes; nil when nothing answers.
func httpGet(port: Int, path: String, timeoutSeconds: Int = 5) -> String? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16_384)
    while true {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count <= 0 { break }
        received.append(contentsOf: buffer[0..<count])
    }
    guard !received.isEmpty else { return nil }
    let text = String(decoding: received, as: UTF8.self)
    return text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? text
}

/// Resident memory of a process in KiB (0 when it is gone).
func residentKiB(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
}
